package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/rules"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// newRulesEnv is an env whose service reads a real rule cache over the env's database and
// Redis, loaded with the given rules.
func newRulesEnv(t *testing.T, stored ...store.PassthroughRule) *env {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	for _, r := range stored {
		if _, err := e.st.CreatePassthroughRule(ctx, r); err != nil {
			t.Fatalf("creating rule: %v", err)
		}
	}
	cache := rules.NewCache(e.st, e.rdb, 0, nil)
	if err := cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := New(e.st, e.rdb, Config{PluginSecret: testSecret, Rules: cache}, nil)
	t.Cleanup(svc.Close)
	r := mux.NewRouter()
	svc.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func TestUpstreamErrorEndpoint(t *testing.T) {
	t.Parallel()
	code, msg := 503, "Upstream quota exhausted"
	e := newRulesEnv(t,
		store.PassthroughRule{Name: "quota", Enabled: true, Priority: 1, ErrorCodes: []int{500}, Keywords: []string{"quota"},
			MatchMode: rules.ModeAll, PassthroughCode: false, ResponseCode: &code, PassthroughBody: false, CustomMessage: &msg},
		store.PassthroughRule{Name: "anthropic 400", Enabled: true, Priority: 2, ErrorCodes: []int{400},
			MatchMode: rules.ModeAny, Platforms: []string{"anthropic"}, PassthroughCode: true, PassthroughBody: true},
	)
	tests := []struct {
		name string
		give upstreamErrorRequest
		want string
	}{
		{"custom status and message", upstreamErrorRequest{GroupID: 1, Platform: "openai", Path: "/v1/responses", Status: 500,
			Body: `{"error":{"message":"You exceeded your current QUOTA"}}`},
			`{"matched":true,"status":503,"body":{"error":{"type":"upstream_error","message":"Upstream quota exhausted"}},"rule_id":1}`},
		{"Anthropic envelope on /v1/messages", upstreamErrorRequest{Platform: "openai", Path: "/v1/messages", Status: 500, Body: "quota"},
			`{"matched":true,"status":503,"body":{"type":"error","error":{"type":"upstream_error","message":"Upstream quota exhausted"}},"rule_id":1}`},
		{"passthrough of status and message", upstreamErrorRequest{Platform: "anthropic", Path: "/v1/messages", Status: 400,
			Body: `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}`},
			`{"matched":true,"status":400,"body":{"type":"error","error":{"type":"upstream_error","message":"prompt is too long"}},"rule_id":2}`},
		{"all mode needs the keyword", upstreamErrorRequest{Platform: "openai", Path: "/v1/responses", Status: 500, Body: "boom"},
			`{"matched":false}`},
		{"platform filter", upstreamErrorRequest{Platform: "openai", Path: "/v1/responses", Status: 400, Body: "bad"},
			`{"matched":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.post(t, "/internal/v1/upstream-error", testSecret, tt.give)
			if res.status != http.StatusOK || !jsonSame(t, res.body, tt.want) {
				t.Fatalf("got %d %s, want 200 %s", res.status, res.body, tt.want)
			}
		})
	}
}

func TestUpstreamErrorEndpointRefusals(t *testing.T) {
	t.Parallel()
	e := newRulesEnv(t)
	tests := []struct {
		name       string
		secret     string
		body       string
		wantStatus int
		wantMsg    string
	}{
		{"no secret", "", `{"status":500}`, http.StatusUnauthorized, "Invalid plugin secret"},
		{"wrong secret", "nope", `{"status":500}`, http.StatusUnauthorized, "Invalid plugin secret"},
		{"not JSON", testSecret, `{`, http.StatusBadRequest, "Failed to parse upstream error"},
		{"status missing", testSecret, `{"platform":"openai","body":"x"}`, http.StatusBadRequest, "status must be an HTTP status"},
		{"too large", testSecret, `{"status":500,"body":"` + strings.Repeat("x", maxUpstreamErrorBody) + `"}`, http.StatusBadRequest, "too large"},
		{"no rules: no match", testSecret, `{"platform":"openai","status":500,"body":"x"}`, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.post(t, "/internal/v1/upstream-error", tt.secret, tt.body)
			if res.status != tt.wantStatus || !strings.Contains(string(res.body), tt.wantMsg) {
				t.Fatalf("got %d %s, want %d containing %q", res.status, res.body, tt.wantStatus, tt.wantMsg)
			}
			if tt.wantStatus == http.StatusOK && !jsonSame(t, res.body, `{"matched":false}`) {
				t.Fatalf("got %s, want no match", res.body)
			}
		})
	}
}

func jsonSame(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("reply %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("want %s is not JSON: %v", want, err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
