package plugin

import (
	"testing"
)

func TestCredentialFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{name: "openai invalid_api_key", status: 401,
			body: `{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, want: true},
		{name: "openai incorrect key without code", status: 401,
			body: `{"error":{"message":"Incorrect API key provided: sk-abc.","type":"invalid_request_error","code":null}}`, want: true},
		{name: "openai account deactivated", status: 401,
			body: `{"error":{"message":"This account has been deactivated.","type":"invalid_request_error","code":"account_deactivated"}}`, want: true},
		{name: "anthropic authentication_error", status: 401,
			body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, want: true},
		{name: "openai bad organization header", status: 401,
			body: `{"error":{"message":"OpenAI-Organization header should match organization for API key","type":"invalid_request_error","code":"mismatched_organization"}}`},
		{name: "openai missing scopes", status: 401,
			body: `{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.responses.write.","type":"invalid_request_error","code":null}}`},
		{name: "anthropic auth error about a beta", status: 401,
			body: `{"type":"error","error":{"type":"authentication_error","message":"OAuth authentication requires the oauth-2025-04-20 beta"}}`},
		{name: "anthropic auth error about a scope", status: 401,
			body: `{"type":"error","error":{"type":"authentication_error","message":"OAuth token does not meet scope requirement user:inference"}}`},
		{name: "anthropic permission on a resource", status: 403,
			body: `{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}`},
		{name: "anthropic organization disabled", status: 403,
			body: `{"type":"error","error":{"type":"permission_error","message":"This organization has been disabled."}}`, want: true},
		{name: "openai region", status: 403,
			body: `{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","code":"unsupported_country_region_territory"}}`},
		{name: "openai model not allowed", status: 403,
			body: `{"error":{"message":"Project does not have access to model gpt-5","type":"invalid_request_error","code":"model_not_found"}}`},
		{name: "invalid_api_key on a 403 is not a 401", status: 403,
			body: `{"error":{"message":"x","type":"invalid_request_error","code":"invalid_api_key"}}`},
		{name: "a client string echoed in a message", status: 401,
			body: `{"error":{"message":"Invalid image URL: invalid_api_key","type":"invalid_request_error","code":"invalid_image_url"}}`},
		{name: "not json", status: 401, body: `Unauthorized`},
		{name: "empty", status: 401, body: ``},
		{name: "error as a string", status: 401, body: `{"error":"invalid_api_key"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := credentialFault(tt.status, []byte(tt.body)); got != tt.want {
				t.Fatalf("credentialFault(%d, %s) = %v, want %v", tt.status, tt.body, got, tt.want)
			}
		})
	}
}

// TestNonCredentialAuthErrorIsRelayed: an upstream 401/403 that does not blame the
// credential is the client's to see: relayed with its status and body, no failover, and the
// report's attempt is a plain upstream_status (controlsvc marks nothing on it). A credential
// fault fails over and is reported as "credential".
func TestNonCredentialAuthErrorIsRelayed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantAdmits int
		wantClass  string // of the first attempt
	}{
		{name: "bad organization 401", status: 401,
			body:       `{"error":{"message":"OpenAI-Organization header should match organization for API key","type":"invalid_request_error","code":"mismatched_organization"}}`,
			wantStatus: 401, wantAdmits: 1, wantClass: classUpstreamStatus},
		{name: "permission on a resource 403", status: 403,
			body:       `{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}`,
			wantStatus: 403, wantAdmits: 1, wantClass: classUpstreamStatus},
		{name: "invalid key fails over", status: 401,
			body:       `{"error":{"message":"Incorrect API key provided: sk-abc.","type":"invalid_request_error","code":"invalid_api_key"}}`,
			wantStatus: 200, wantAdmits: 2, wantClass: classCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", upstreamReply{status: tt.status, body: tt.body})
			up.set("up-2", okReply("hi"))
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"},
				stubAccount{id: 2, baseURL: up.srv.URL, apiKey: "up-2"})
			p := newTestPlugin(t, stub, nil)
			rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body.String(), tt.wantStatus)
			}
			if tt.wantStatus != 200 && rec.Body.String() != tt.body {
				t.Fatalf("body %s, want the upstream's %s", rec.Body.String(), tt.body)
			}
			calls := stub.admitCalls()
			if len(calls) != tt.wantAdmits {
				t.Fatalf("%d admit calls, want %d", len(calls), tt.wantAdmits)
			}
			if tt.wantAdmits == 2 && (calls[1].Failed == nil || calls[1].Failed.ErrorClass != classCredential || calls[1].Failed.AccountID != 1) {
				t.Fatalf("re-admission failed = %+v, want account 1 class credential", calls[1].Failed)
			}
			r := stub.waitReport()
			if len(r.Attempts) == 0 || r.Attempts[0].ErrorClass != tt.wantClass || r.Attempts[0].Status != tt.status {
				t.Fatalf("report attempts = %+v, want first %d %s", r.Attempts, tt.status, tt.wantClass)
			}
		})
	}
}
