package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A hostile tenant's headers through the real Traefik (docs/design.md, "Forwarded
// headers"): Traefik adds X-Forwarded-* and X-Real-Ip to what it hands the plugin, and the
// client adds its own steering; the fake upstream must see none of it, only the allowlisted
// headers, the beta tokens the group allows, the group's User-Agent and the account's fixed
// header. The account's answer carries rate-limit, CDN and cookie headers the client must
// not see.

// deniedRequestHeaders must never reach the upstream (checked by name, any value).
var deniedRequestHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Proto",
	"X-Forwarded-Server", "X-Real-Ip", "Forwarded", "Via", "Cookie", "Openai-Project", "X-Custom-Steer", "X-Stainless-Lang"}

// deniedResponseHeaders are what the fake's answer carries that no client may see.
var deniedResponseHeaders = map[string]string{
	"X-Ratelimit-Remaining-Requests":         "41",
	"X-Ratelimit-Reset-Tokens":               "6ms",
	"Anthropic-Ratelimit-Requests-Remaining": "6",
	"Alt-Svc":                                `h3=":443"; ma=86400`,
	"Strict-Transport-Security":              "max-age=31536000; includeSubDomains",
	"Set-Cookie":                             "__cf_bm=abc; path=/; HttpOnly",
	"Server":                                 "cloudflare",
	"Cf-Ray":                                 "8a1b2c3d4e-AMS",
	"Openai-Organization":                    "org-of-the-account",
	"Openai-Processing-Ms":                   "321",
}

func TestHostileHeaders(t *testing.T) {
	tests := []struct {
		name     string
		platform string
		path     string
		body     string
		group    obj               // the group's header policy, PATCHed before first use
		client   map[string]string // the tenant's own headers besides the hostile ones
		want     map[string]string // upstream header → value; "" = absent
		stream   bool
	}{
		{name: "openai responses, defaults", platform: "openai", path: "/v1/responses",
			body: `{"model":"gpt-4o-mini","input":"hi"}`,
			client: map[string]string{"OpenAI-Beta": "responses=experimental, unknown-beta=1", "User-Agent": "codex_cli_rs/0.80",
				"session_id": "sess-1"},
			want: map[string]string{"Openai-Beta": "responses=experimental", "User-Agent": "codex_cli_rs/0.80",
				"Session_id": "sess-1", "Openai-Organization": "org-acct", "X-Acct-Tag": "pool-a"}},
		{name: "openai chat stream, fixed user agent, no betas", platform: "openai", path: "/v1/chat/completions",
			body:   `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			group:  obj{"forward_betas": []string{}, "user_agent": "poolgate-e2e/1"},
			client: map[string]string{"OpenAI-Beta": "assistants=v2", "User-Agent": "tenant-tool/9"},
			want: map[string]string{"Openai-Beta": "", "User-Agent": "poolgate-e2e/1",
				"Openai-Organization": "org-acct", "X-Acct-Tag": "pool-a"},
			stream: true},
		{name: "anthropic messages stream, group beta list", platform: "anthropic", path: "/v1/messages",
			body:  `{"model":"claude-sonnet-4","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			group: obj{"forward_betas": []string{"claude-code-20250219", "interleaved-thinking-2025-05-14"}},
			client: map[string]string{"anthropic-beta": "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,unknown-beta-2099-01-01",
				"anthropic-version": "2023-06-01", "User-Agent": "claude-cli/2.1.0 (external, cli)", "X-Claude-Code-Session-Id": "cc-sess"},
			want: map[string]string{"Anthropic-Beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
				"User-Agent": "claude-cli/2.1.0 (external, cli)", "X-Claude-Code-Session-Id": "cc-sess",
				"Openai-Organization": "org-acct", "X-Acct-Tag": "pool-a"},
			stream: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := unique("sk-hostile")
			tn, accts := headerTenant(t, tt.platform, cred, tt.group)
			script := obj{}
			for k, v := range deniedResponseHeaders {
				script[k] = v
			}
			script["X-Request-Id"] = "upstream-req-42"
			programCredential(t, cred, obj{"headers": script})

			hdr := map[string]string{"X-Forwarded-For": "198.51.100.7", "X-Real-Ip": "198.51.100.7",
				"Forwarded": "for=198.51.100.7;proto=https", "Via": "1.1 tenant-proxy", "Cookie": "session=tenant",
				"OpenAI-Organization": "org-bogus", "OpenAI-Project": "proj-bogus", "X-Custom-Steer": "route-me",
				"X-Stainless-Lang": "js"}
			for k, v := range tt.client {
				hdr[k] = v
			}
			key := tn.Key
			if tt.platform == "anthropic" {
				hdr["x-api-key"] = key
				key = ""
			}
			code, respHdr, body := post(t, tt.path, key, tt.body, hdr)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			if tt.stream && !strings.Contains(body, "data: ") {
				t.Fatalf("want a stream, got %.200s", body)
			}

			reqs := fakeRequestsWith(t, credentialHeader(tt.platform), credentialValue(tt.platform, cred))
			if len(reqs) != 1 {
				t.Fatalf("the fake saw %d requests with the account's credential, want 1", len(reqs))
			}
			got := reqs[0].Headers
			for _, h := range deniedRequestHeaders {
				if v := headerValues(got, h); len(v) > 0 {
					t.Errorf("denied header %s reached the upstream: %q", h, v)
				}
			}
			if v := headerValues(got, "Openai-Organization"); len(v) != 1 || v[0] != "org-acct" {
				t.Errorf("OpenAI-Organization upstream = %q, want only the account's org-acct", v)
			}
			for h, want := range tt.want {
				if g := strings.Join(headerValues(got, h), "|"); g != want {
					t.Errorf("upstream %s = %q, want %q", h, g, want)
				}
			}
			if strings.Contains(strings.Join(headerValues(got, "Authorization"), "")+headerValue(got, "x-api-key"), tn.Key) {
				t.Error("the tenant's key reached the upstream")
			}

			for h := range deniedResponseHeaders {
				if v := respHdr.Values(h); len(v) > 0 {
					t.Errorf("denied response header %s reached the client: %q", h, v)
				}
			}
			if respHdr.Get("X-Upstream-Request-Id") != "upstream-req-42" || respHdr.Get("X-Request-Id") != "" {
				t.Errorf("x-upstream-request-id %q, x-request-id %q; want the upstream's id under the first name only",
					respHdr.Get("X-Upstream-Request-Id"), respHdr.Get("X-Request-Id"))
			}
			if respHdr.Get("X-Poolgate-Request-Id") == "" || respHdr.Get("Content-Type") == "" {
				t.Errorf("gateway headers missing: %v", respHdr)
			}
			assertAllowlistedResponse(t, respHdr)
			// org-bogus went nowhere, so no account was paused for it.
			for _, a := range accts {
				acc := mustAdmin(t, "GET", fmt.Sprintf("/accounts/%d", a), nil)
				if st, _ := acc["state"].(obj); st["paused_until"] != nil || acc["status"] != "active" {
					t.Errorf("account %d after the request: %v", a, acc)
				}
			}
			assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
		})
	}
}

// headerTenant is a user with a key on a group of platform with the header policy group and
// one account on the fake with credential cred and the fixed headers the scenarios expect.
func headerTenant(t *testing.T, platform, cred string, group obj) (tenant, []int64) {
	t.Helper()
	u := mustAdmin(t, "POST", "/users", obj{"name": unique("user"), "concurrency": 5, "balance_usd": 10})
	g := mustAdmin(t, "POST", "/groups", obj{"name": unique("group"), "platform": platform})
	if group != nil {
		mustAdmin(t, "PATCH", fmt.Sprintf("/groups/%d", id(g)), group)
	}
	a := mustAdmin(t, "POST", "/accounts", obj{"name": unique("acct"), "platform": platform, "base_url": gw.FakeURL,
		"credential": obj{"api_key": cred}, "concurrency": 10, "group_ids": []int64{id(g)},
		"headers": obj{"OpenAI-Organization": "org-acct", "x-acct-tag": "pool-a"}})
	if h, _ := a["headers"].(obj); h["Openai-Organization"] != "org-acct" || h["X-Acct-Tag"] != "pool-a" {
		t.Fatalf("account headers = %v", a["headers"])
	}
	k := mustAdmin(t, "POST", "/api-keys", obj{"user_id": id(u), "group_id": id(g), "name": "e2e-headers"})
	key, _ := k["key"].(string)
	if key == "" {
		t.Fatalf("api key creation returned no key: %v", k)
	}
	return tenant{UserID: id(u), GroupID: id(g), KeyID: id(k), Key: key, Creds: []string{cred}}, []int64{id(a)}
}

// allowedResponseHeaders are all a client may see: the upstream's Content-Type, Retry-After
// and request id, the gateway's own X-Poolgate-* and what Go and Traefik set themselves.
var allowedResponseHeaders = map[string]bool{"Content-Type": true, "Retry-After": true, "X-Upstream-Request-Id": true,
	"Content-Length": true, "Date": true, "Cache-Control": true, "X-Accel-Buffering": true, "Transfer-Encoding": true}

// assertAllowlistedResponse fails on any response header outside the allowlist.
func assertAllowlistedResponse(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		if !allowedResponseHeaders[k] && !strings.HasPrefix(k, "X-Poolgate-") {
			t.Errorf("response header %s is not on the allowlist: %q", k, h.Values(k))
		}
	}
}

func credentialHeader(platform string) string {
	if platform == "anthropic" {
		return "x-api-key"
	}
	return "Authorization"
}

func credentialValue(platform, cred string) string {
	if platform == "anthropic" {
		return cred
	}
	return "Bearer " + cred
}

// headerValues returns all values of name in a recorded header map, any case.
func headerValues(h map[string][]string, name string) []string {
	var out []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}
