package plugin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// hostileClientHeaders are what a tenant (or Traefik in front of the plugin) may put on a
// request that must never reach an account.
var hostileClientHeaders = map[string]string{
	"Authorization":       "Bearer sk-client",
	"X-Api-Key":           "sk-client-2",
	"X-Goog-Api-Key":      "sk-client-3",
	"Cookie":              "a=b",
	"X-Forwarded-For":     "203.0.113.7",
	"X-Forwarded-Host":    "gw.example",
	"X-Forwarded-Proto":   "https",
	"X-Real-Ip":           "203.0.113.7",
	"Forwarded":           "for=203.0.113.7",
	"Via":                 "1.1 proxy",
	"Openai-Organization": "org-bogus",
	"Openai-Project":      "proj-bogus",
	"X-Custom-Steer":      "1",
	"X-Stainless-Os":      "Linux",
	"Accept-Encoding":     "gzip",
	"Expect":              "100-continue",
	"Connection":          "keep-alive, X-Hop",
	"X-Hop":               "1",
	"Proxy-Authorization": "Basic eA==",
	"X-Session-Id":        "gateway-only",
}

func strPtr(s string) *string { return &s }

func TestUpstreamRequestHeaderAllowlist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client map[string]string
		grant  grant
		want   map[string]string // header → exact value upstream ("" = must be absent)
	}{
		{
			name: "openai: provider headers and default betas pass, hostile ones do not",
			client: map[string]string{"Content-Type": "application/json", "Accept": "text/event-stream",
				"Openai-Beta": "responses=experimental, bogus=1", "session_id": "s1", "conversation_id": "c1",
				"Session-Id": "s2", "Thread-Id": "t1", "User-Agent": "codex_cli_rs/0.50", "Anthropic-Beta": "claude-code-20250219",
				"Anthropic-Version": "2023-06-01", "X-Claude-Code-Session-Id": "cc"},
			grant: grant{Platform: "openai", Headers: map[string]string{"Authorization": "Bearer sk-acct"}},
			want: map[string]string{"Content-Type": "application/json", "Accept": "text/event-stream",
				"Openai-Beta": "responses=experimental", "Session_id": "s1", "Conversation_id": "c1", "Session-Id": "s2",
				"Thread-Id": "t1", "User-Agent": "codex_cli_rs/0.50", "Authorization": "Bearer sk-acct",
				"Anthropic-Beta": "", "Anthropic-Version": "", "X-Claude-Code-Session-Id": ""},
		},
		{
			name: "anthropic: default betas filtered token by token, oauth never",
			client: map[string]string{"Anthropic-Beta": "claude-code-20250219,oauth-2025-04-20, interleaved-thinking-2025-05-14,made-up-2099-01-01",
				"X-Claude-Code-Session-Id": "cc-1", "Anthropic-Version": "2023-01-01", "Openai-Beta": "assistants=v2",
				"session_id": "s1", "User-Agent": "claude-cli/2.1 (external, cli)"},
			grant: grant{Platform: "anthropic", Headers: map[string]string{"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}},
			want: map[string]string{"Anthropic-Beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
				"X-Claude-Code-Session-Id": "cc-1", "Anthropic-Version": "2023-06-01", "X-Api-Key": "sk-ant",
				"User-Agent": "claude-cli/2.1 (external, cli)", "Openai-Beta": "", "Session_id": ""},
		},
		{
			name:   "group list replaces the defaults",
			client: map[string]string{"Anthropic-Beta": "claude-code-20250219,context-1m-2025-08-07"},
			grant:  grant{Platform: "anthropic", ForwardBetas: strPtr("context-1m-2025-08-07,oauth-2025-04-20")},
			want:   map[string]string{"Anthropic-Beta": "context-1m-2025-08-07"},
		},
		{
			name:   "empty group list forwards no beta",
			client: map[string]string{"Openai-Beta": "responses=experimental"},
			grant:  grant{Platform: "openai", ForwardBetas: strPtr("")},
			want:   map[string]string{"Openai-Beta": ""},
		},
		{
			name:   "no token left: no header",
			client: map[string]string{"Anthropic-Beta": "oauth-2025-04-20, made-up"},
			grant:  grant{Platform: "anthropic"},
			want:   map[string]string{"Anthropic-Beta": ""},
		},
		{
			name:   "fixed user agent replaces the client's",
			client: map[string]string{"User-Agent": "tenant-tool/1"},
			grant:  grant{Platform: "openai", UserAgent: "poolgate/1"},
			want:   map[string]string{"User-Agent": "poolgate/1"},
		},
		{
			name:   "account fixed headers are set, the credential wins over the client",
			client: map[string]string{"Authorization": "Bearer sk-client", "Openai-Organization": "org-bogus"},
			grant: grant{Platform: "openai", Headers: map[string]string{"Authorization": "Bearer sk-acct",
				"OpenAI-Organization": "org-acct", "X-Acct-Fixed": "v"}},
			want: map[string]string{"Authorization": "Bearer sk-acct", "Openai-Organization": "org-acct", "X-Acct-Fixed": "v"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader("{}"))
			for k, v := range hostileClientHeaders {
				client.Header.Set(k, v)
			}
			for k, v := range tt.client {
				client.Header.Set(k, v)
			}
			g := tt.grant
			g.BaseURL = "http://upstream.invalid"
			out, err := buildUpstreamRequest(context.Background(), client, pathResponses, &g, []byte("{}"))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got := strings.Join(out.Header.Values(k), "|"); got != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
			for k := range out.Header {
				if _, ok := tt.want[k]; ok {
					continue
				}
				switch k {
				case "Content-Type", "User-Agent", "Authorization", "X-Api-Key", "Anthropic-Version":
					continue // set by every request or by the grant
				}
				t.Errorf("upstream got an unlisted header %s: %q", k, out.Header.Values(k))
			}
		})
	}
}

func TestClientWithoutUserAgentSendsNone(t *testing.T) {
	t.Parallel()
	client := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader("{}"))
	client.Header.Del("User-Agent")
	out, err := buildUpstreamRequest(context.Background(), client, pathResponses, &grant{BaseURL: "http://u.invalid"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An empty value keeps Go's transport from sending its default "Go-http-client".
	if v, ok := out.Header["User-Agent"]; !ok || len(v) != 1 || v[0] != "" {
		t.Fatalf("User-Agent = %q (present %v), want an empty value", v, ok)
	}
}

// hostileResponseHeaders are what an account's answer carries that no tenant may see.
var hostileResponseHeaders = map[string]string{
	"X-Ratelimit-Remaining-Requests":         "42",
	"X-Ratelimit-Limit-Tokens":               "100000",
	"Anthropic-Ratelimit-Requests-Remaining": "7",
	"Alt-Svc":                                `h3=":443"`,
	"Strict-Transport-Security":              "max-age=31536000",
	"Set-Cookie":                             "__cf_bm=x",
	"Server":                                 "cloudflare",
	"Cf-Ray":                                 "8a-LHR",
	"Cf-Cache-Status":                        "DYNAMIC",
	"Openai-Organization":                    "org-secret",
	"Openai-Project":                         "proj-secret",
	"Openai-Processing-Ms":                   "123",
	"Anthropic-Organization-Id":              "anth-secret",
	"X-Poolgate-Reject":                      "spoofed",
	"Via":                                    "1.1 google",
}

func TestClientResponseHeaderAllowlist(t *testing.T) {
	t.Parallel()
	sse := []string{"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n",
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1,\"total_tokens\":2}}}\n\n"}
	tests := []struct {
		name      string
		path      string
		body      string
		reply     upstreamReply
		anthropic bool
		wantCode  int
		wantID    string
		wantRetry string
	}{
		{name: "non-stream pass-through", path: "/v1/responses", body: `{"model":"m","input":"x"}`,
			reply: okReply("ok"), wantCode: 200, wantID: "req-openai"},
		{name: "stream pass-through", path: "/v1/responses", body: `{"model":"m","input":"x","stream":true}`,
			reply: upstreamReply{status: 200, events: sse}, wantCode: 200, wantID: "req-openai"},
		{name: "upstream error relayed", path: "/v1/responses", body: `{"model":"m","input":"x"}`,
			reply: upstreamReply{status: 400, body: `{"error":{"type":"invalid_request_error","message":"bad"}}`}, wantCode: 400, wantID: "req-openai"},
		{name: "converted to messages", path: "/v1/responses", body: `{"model":"m","input":"x"}`, anthropic: true,
			reply: upstreamReply{status: 200, events: anthFull}, wantCode: 200, wantID: "req-anthropic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			reply := tt.reply
			reply.headers = map[string]string{}
			for k, v := range hostileResponseHeaders {
				reply.headers[k] = v
			}
			if tt.anthropic {
				reply.headers["Request-Id"] = tt.wantID
			} else {
				reply.headers["X-Request-Id"] = tt.wantID
			}
			up.set("up-1", reply)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1", anthropic: tt.anthropic})
			p := newTestPlugin(t, stub, nil)
			rec := do(p, tt.path, tt.body, nil)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			for k := range hostileResponseHeaders {
				if v := rec.Header().Values(k); len(v) > 0 {
					t.Errorf("upstream header %s reached the client: %q", k, v)
				}
			}
			if got := rec.Header().Get("X-Upstream-Request-Id"); got != tt.wantID {
				t.Errorf("x-upstream-request-id = %q, want %q", got, tt.wantID)
			}
			for _, k := range []string{"X-Request-Id", "Request-Id"} {
				if v := rec.Header().Get(k); v != "" {
					t.Errorf("%s passed under its own name: %q", k, v)
				}
			}
			if !strings.HasPrefix(rec.Header().Get(headerRequestID), "req_") || rec.Header().Get("Content-Type") == "" {
				t.Errorf("gateway headers missing: %v", rec.Header())
			}
		})
	}
}

func TestResponseHeadersCopied(t *testing.T) {
	t.Parallel()
	src := http.Header{}
	for k, v := range hostileResponseHeaders {
		src.Set(k, v)
	}
	src.Set("Content-Type", "application/json")
	src.Set("Content-Length", "12")
	src.Set("Retry-After", "3")
	src.Set("Request-Id", "req-a")
	tests := []struct {
		name   string
		stream bool
		want   http.Header
	}{
		{name: "body", want: http.Header{"Content-Type": {"application/json"}, "Content-Length": {"12"},
			"Retry-After": {"3"}, "X-Upstream-Request-Id": {"req-a"}}},
		{name: "stream drops the length", stream: true, want: http.Header{"Content-Type": {"application/json"},
			"Retry-After": {"3"}, "X-Upstream-Request-Id": {"req-a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := http.Header{}
			copyResponseHeaders(dst, src, tt.stream)
			if len(dst) != len(tt.want) {
				t.Fatalf("copied %v, want %v", dst, tt.want)
			}
			for k, v := range tt.want {
				if dst.Get(k) != v[0] {
					t.Errorf("%s = %q, want %q", k, dst.Get(k), v[0])
				}
			}
		})
	}
}

// The group policy and the fixed headers arrive in the grant's JSON (decodeGrant) and apply
// to pass-through and converted attempts alike.
func TestGrantHeaderPolicyThroughThePlugin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		anthropic bool
		path      string
		body      string
		betas     *string
		ua        string
		want      map[string]string
	}{
		{name: "pass-through, group list", path: "/v1/responses", body: `{"model":"m","input":"x"}`,
			betas: strPtr("responses=v1"), ua: "pool/2",
			want: map[string]string{"Openai-Beta": "responses=v1", "User-Agent": "pool/2", "Openai-Organization": "org-acct",
				"Authorization": "Bearer up-1"}},
		{name: "pass-through, no betas allowed", path: "/v1/responses", body: `{"model":"m","input":"x"}`,
			betas: strPtr(""),
			want:  map[string]string{"Openai-Beta": "", "User-Agent": "tenant/1", "Openai-Organization": "org-acct"}},
		{name: "converted, client user agent, no client beta", anthropic: true, path: "/v1/responses",
			body: `{"model":"m","input":"x"}`,
			want: map[string]string{"User-Agent": "tenant/1", "Openai-Beta": "", "Anthropic-Beta": "",
				"Openai-Organization": "org-acct", "X-Api-Key": "up-1", "Session_id": ""}},
		{name: "converted, fixed user agent", anthropic: true, path: "/v1/responses", body: `{"model":"m","input":"x"}`,
			ua:   "pool/3",
			want: map[string]string{"User-Agent": "pool/3", "Openai-Organization": "org-acct"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			reply := okReply("ok")
			if tt.anthropic {
				reply = upstreamReply{status: 200, events: anthFull}
			}
			up.set("up-1", reply)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1", anthropic: tt.anthropic,
				forwardBetas: tt.betas, userAgent: tt.ua, fixed: map[string]string{"OpenAI-Organization": "org-acct"}})
			p := newTestPlugin(t, stub, nil)
			rec := do(p, tt.path, tt.body, map[string]string{"OpenAI-Beta": "responses=v1", "User-Agent": "tenant/1",
				"Openai-Organization": "org-bogus", "session_id": "s"})
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			got := up.recorded()
			if len(got) != 1 {
				t.Fatalf("%d upstream requests", len(got))
			}
			for k, v := range tt.want {
				if g := strings.Join(got[0].header.Values(k), "|"); g != v {
					t.Errorf("upstream %s = %q, want %q", k, g, v)
				}
			}
		})
	}
}
