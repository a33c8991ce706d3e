package adminapi

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// A group's header policy (forward_betas, user_agent) round-trips, null being the default.
func TestGroupHeaderPolicyAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var g groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"hp","platform":"anthropic"}`, http.StatusCreated, &g)
	if g.ForwardBetas != nil || g.UserAgent != "" {
		t.Fatalf("defaults = %+v, want forward_betas null and user_agent \"\"", g.groupForwardingView)
	}
	path := "/api/v1/admin/groups/" + itoa(g.ID)
	if _, raw := e.call(http.MethodGet, path, nil); !strings.Contains(string(raw), `"forward_betas":null`) {
		t.Errorf("default group = %s, want \"forward_betas\":null", raw)
	}
	tests := []struct {
		name string
		body string
		want groupForwardingView
	}{
		{"list and user agent", `{"forward_betas":["claude-code-20250219","context-1m-2025-08-07","claude-code-20250219"],"user_agent":"pool/1.0 (ops)"}`,
			groupForwardingView{ForwardBetas: []string{"claude-code-20250219", "context-1m-2025-08-07"}, UserAgent: "pool/1.0 (ops)"}},
		{"absent fields are kept", `{"name":"hp2"}`,
			groupForwardingView{ForwardBetas: []string{"claude-code-20250219", "context-1m-2025-08-07"}, UserAgent: "pool/1.0 (ops)"}},
		{"empty list forwards none", `{"forward_betas":[]}`, groupForwardingView{ForwardBetas: []string{}, UserAgent: "pool/1.0 (ops)"}},
		{"null and empty user agent restore the defaults", `{"forward_betas":null,"user_agent":""}`, groupForwardingView{}},
	}
	for _, tt := range tests { // sequential: each PATCH builds on the previous one
		var got, read groupView
		e.mustCall(http.MethodPatch, path, tt.body, http.StatusOK, &got)
		e.mustCall(http.MethodGet, path, nil, http.StatusOK, &read)
		if !reflect.DeepEqual(got.groupForwardingView, tt.want) || !reflect.DeepEqual(read.groupForwardingView, tt.want) {
			t.Fatalf("%s: PATCH = %#v, GET = %#v, want %#v", tt.name, got.groupForwardingView, read.groupForwardingView, tt.want)
		}
	}
	var created groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"hp3","platform":"openai","forward_betas":[],"user_agent":"x/1"}`,
		http.StatusCreated, &created)
	if created.ForwardBetas == nil || len(created.ForwardBetas) != 0 || created.UserAgent != "x/1" {
		t.Errorf("created = %#v", created.groupForwardingView)
	}
}

func TestGroupHeaderPolicyValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	long := strings.Repeat("a", 101)
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"not an array", `"forward_betas":"claude-code-20250219"`, "forward_betas must be an array"},
		{"not strings", `"forward_betas":[1]`, "forward_betas must be an array"},
		{"oauth beta", `"forward_betas":["oauth-2025-04-20"]`, "accounts authenticate with API keys"},
		{"comma in a token", `"forward_betas":["a,b"]`, "is not a beta token"},
		{"upper case", `"forward_betas":["Claude-Code"]`, "is not a beta token"},
		{"empty token", `"forward_betas":[""]`, "each token must be 1 to 100"},
		{"long token", `"forward_betas":["` + long + `"]`, "each token must be 1 to 100"},
		{"user agent with a newline", `"user_agent":"a\nb"`, "user_agent must be printable ASCII"},
		{"user agent too long", `"user_agent":"` + strings.Repeat("u", 513) + `"`, "user_agent must be at most 512"},
		{"user agent not a string", `"user_agent":1`, "user_agent must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPost, "/api/v1/admin/groups", `{"name":"x","platform":"anthropic",`+tt.body+`}`,
				http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	id := e.createGroup("hv", "openai")
	e.wantError(http.MethodPatch, "/api/v1/admin/groups/"+itoa(id), `{"forward_betas":["oauth-x"]}`,
		http.StatusBadRequest, "invalid_request_error", "accounts authenticate with API keys")
}

// An account's fixed headers round-trip under canonical names; refused names are named.
func TestAccountHeadersAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.createGroup("ah", "openai")
	var a struct {
		ID      int64             `json:"id"`
		Headers map[string]string `json:"headers"`
	}
	e.mustCall(http.MethodPost, "/api/v1/admin/accounts", map[string]any{
		"name": "ah", "platform": "openai", "base_url": "https://api.openai.com", "group_ids": []int64{g},
		"credential": map[string]string{"api_key": "sk-ah-zzSECRETzz"}, "headers": map[string]string{"openai-organization": "org-acct"},
	}, http.StatusCreated, &a)
	if !reflect.DeepEqual(a.Headers, map[string]string{"Openai-Organization": "org-acct"}) {
		t.Fatalf("created headers = %v", a.Headers)
	}
	e.secrets = append(e.secrets, "sk-ah-zzSECRETzz")
	path := "/api/v1/admin/accounts/" + itoa(a.ID)
	a.Headers = nil
	e.mustCall(http.MethodPatch, path, `{"name":"ah2"}`, http.StatusOK, &a)
	if len(a.Headers) != 1 {
		t.Fatalf("a PATCH without headers changed them: %v", a.Headers)
	}
	a.Headers = nil // decoding into a map adds to it
	e.mustCall(http.MethodPatch, path, `{"headers":{}}`, http.StatusOK, &a)
	if a.Headers == nil || len(a.Headers) != 0 {
		t.Fatalf("cleared headers = %v, want {}", a.Headers)
	}

	tests := []struct {
		name    string
		headers string
		msg     string
	}{
		{"credential", `{"Authorization":"Bearer x"}`, "the credential goes in the credential field"},
		{"credential any case", `{"x-API-key":"x"}`, "the credential goes in the credential field"},
		{"hop-by-hop", `{"Connection":"close"}`, "hop-by-hop"},
		{"forwarding", `{"X-Forwarded-For":"1.2.3.4"}`, "never sends it upstream"},
		{"real ip", `{"X-Real-IP":"1.2.3.4"}`, "would name a client"},
		{"gateway's own", `{"X-Poolgate-Secret":"x"}`, "never sends it upstream"},
		{"user agent is the group's", `{"User-Agent":"x"}`, "the group decides it"},
		{"bad name", `{"Bad Name":"x"}`, "is not a header name"},
		{"newline in value", `{"X-A":"a\r\nX-B: b"}`, "printable ASCII"},
		{"empty value", `{"X-A":""}`, "printable ASCII"},
		{"twice", `{"X-A":"1","x-a":"2"}`, "is named twice"},
		{"not strings", `{"X-A":1}`, "headers must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPatch, path, `{"headers":`+tt.headers+`}`, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	many := map[string]string{}
	for i := 0; i < 33; i++ {
		many["X-H"+itoa(int64(i))] = "v"
	}
	e.wantError(http.MethodPatch, path, map[string]any{"headers": many}, http.StatusBadRequest, "invalid_request_error", "at most 32 headers")
}
