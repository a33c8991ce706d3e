package yaegi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Header hygiene under Yaegi (docs/design.md, "Forwarded headers"): the interpreted plugin
// forwards only the allowlisted client headers, filters the beta tokens through the group's
// list, applies the group's User-Agent and the account's fixed headers from the real
// controlsvc's grant, and shows the client only the allowlisted response headers.

var yaegiHostileRequest = map[string]string{
	"X-Forwarded-For": "203.0.113.9", "X-Real-Ip": "203.0.113.9", "Forwarded": "for=203.0.113.9",
	"Via": "1.1 tenant-proxy", "Cookie": "sid=1", "Openai-Organization": "org-bogus", "Openai-Project": "proj-bogus",
	"X-Custom-Steer": "1", "X-Stainless-Os": "Linux",
}

var yaegiHostileResponse = map[string]string{
	"X-Ratelimit-Remaining-Requests": "41", "Anthropic-Ratelimit-Requests-Remaining": "6", "Alt-Svc": `h3=":443"`,
	"Strict-Transport-Security": "max-age=1", "Set-Cookie": "__cf_bm=1", "Server": "cloudflare", "Cf-Ray": "8a-AMS",
}

func TestHeaderAllowlistsUnderYaegi(t *testing.T) {
	s := getStack(t)
	tests := []struct {
		name      string
		platform  string
		path      string
		body      string
		group     map[string]any
		client    map[string]string
		want      map[string]string // upstream header → value ("" = absent)
		requestID string            // the upstream's id header name
	}{
		{name: "openai, default betas, client user agent", platform: "openai", path: "/v1/responses",
			body:   `{"model":"gpt-4o","input":"hi"}`,
			client: map[string]string{"OpenAI-Beta": "responses=experimental,made-up=1", "User-Agent": "codex_cli_rs/0.1", "session_id": "s-1"},
			want: map[string]string{"Openai-Beta": "responses=experimental", "User-Agent": "codex_cli_rs/0.1", "Session_id": "s-1",
				"Openai-Organization": "org-acct", "X-Acct": "fixed"},
			requestID: "X-Request-Id"},
		{name: "anthropic, group list and user agent, stream", platform: "anthropic", path: "/v1/messages",
			body:  `{"model":"claude-sonnet-4","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			group: map[string]any{"forward_betas": []string{"context-1m-2025-08-07"}, "user_agent": "pool-ua/1"},
			client: map[string]string{"Anthropic-Beta": "claude-code-20250219,context-1m-2025-08-07,oauth-2025-04-20",
				"User-Agent": "claude-cli/2", "X-Claude-Code-Session-Id": "cc-1"},
			want: map[string]string{"Anthropic-Beta": "context-1m-2025-08-07", "User-Agent": "pool-ua/1",
				"X-Claude-Code-Session-Id": "cc-1", "Openai-Organization": "org-acct", "X-Acct": "fixed"},
			requestID: "X-Request-Id"}, // the fake sends x-request-id on every API
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := s.seedOn(t, tt.platform, accountSpec{name: "a", priority: 1})
			cred := tn.accounts[0].cred
			// Set before the key's first use: no controlsvc cache holds the old rows.
			s.admin.do(t, http.MethodPatch, "/accounts/"+itoa(tn.accounts[0].id),
				map[string]any{"headers": map[string]string{"OpenAI-Organization": "org-acct", "x-acct": "fixed"}}, http.StatusOK, nil)
			if tt.group != nil {
				s.admin.do(t, http.MethodPatch, "/groups/"+itoa(tn.groupID), tt.group, http.StatusOK, nil)
			}
			headers := map[string]string{}
			for k, v := range yaegiHostileResponse {
				headers[k] = v
			}
			headers[tt.requestID] = "up-req-7"
			s.fake.SetCredentialScript(cred, fakeupstream.Script{Headers: headers})

			hdr := map[string]string{"Authorization": "Bearer " + tn.key, "X-Api-Key": tn.key}
			for k, v := range yaegiHostileRequest {
				hdr[k] = v
			}
			for k, v := range tt.client {
				hdr[k] = v
			}
			rec := serve(t, s.handler, tt.path, hdr, tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			ups := s.upstreamRequests(cred)
			if len(ups) != 1 {
				t.Fatalf("fake saw %d requests, want 1", len(ups))
			}
			got := ups[0].Headers
			for k := range yaegiHostileRequest {
				if k == "Openai-Organization" {
					continue // the account's own, checked below
				}
				if v := got.Values(k); len(v) > 0 {
					t.Errorf("client header %s reached the upstream: %q", k, v)
				}
			}
			for k, v := range tt.want {
				if g := strings.Join(got.Values(k), "|"); g != v {
					t.Errorf("upstream %s = %q, want %q", k, g, v)
				}
			}
			if strings.Contains(strings.Join(got.Values("Authorization"), ""), tn.key) || got.Get("X-Api-Key") == tn.key {
				t.Errorf("the client's key reached the upstream")
			}
			for k := range yaegiHostileResponse {
				if v := rec.Header().Values(k); len(v) > 0 {
					t.Errorf("upstream header %s reached the client: %q", k, v)
				}
			}
			if rec.Header().Get("X-Upstream-Request-Id") != "up-req-7" || rec.Header().Get(tt.requestID) != "" {
				t.Errorf("response headers %v, want x-upstream-request-id up-req-7 only", rec.Header())
			}
			s.waitIdle(t, tn)
		})
	}
}
