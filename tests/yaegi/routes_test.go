package yaegi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// The paths (docs/design.md, "Paths") under the interpreter: the routes without /v1,
// unknown paths as JSON 404s, GET /v1/models relayed from the control service and
// count_tokens forwarded or estimated.

func TestUnknownPathsUnderYaegi(t *testing.T) {
	h, err := plugin(t).newHandler(context.Background(), nextHandler(),
		map[string]any{"pluginSecret": "s", "controlURL": "http://127.0.0.1:1"}, "routes")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		header             map[string]string
		anthropic          bool
	}{
		{name: "GET on an AI path", method: "GET", path: "/v1/responses"},
		{name: "unknown /v1 path", method: "POST", path: "/v1/embeddings"},
		{name: "GET on the compaction route", method: "GET", path: "/responses/compact"},
		{name: "under messages", method: "POST", path: "/v1/messages/batches", anthropic: true},
		{name: "anthropic client", method: "GET", path: "/v1/files", header: map[string]string{"anthropic-version": "2023-06-01"}, anthropic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader("{}"))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if rec.Code != http.StatusNotFound || json.Unmarshal(rec.Body.Bytes(), &e) != nil {
				t.Fatalf("got %d %s, want a JSON 404", rec.Code, rec.Body)
			}
			wantType := "invalid_request_error"
			if tt.anthropic {
				wantType = "not_found_error"
			}
			if (e.Type == "error") != tt.anthropic || e.Error.Type != wantType || e.Error.Message != "Invalid URL ("+tt.method+" "+tt.path+")" {
				t.Fatalf("got %s, want %s in the anthropic=%v shape", rec.Body, wantType, tt.anthropic)
			}
		})
	}
}

// The plugin serves GET /v1/models from POST /internal/v1/models (contract B), here a fake
// control service answering the contract.
func TestModelsUnderYaegi(t *testing.T) {
	var shapes []string
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var mr struct {
			APIKey string `json:"api_key"`
			Shape  string `json:"shape"`
		}
		if r.URL.Path != "/internal/v1/models" || r.Header.Get("X-Poolgate-Secret") != "s" || json.NewDecoder(r.Body).Decode(&mr) != nil {
			http.NotFound(w, r)
			return
		}
		shapes = append(shapes, mr.Shape)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"list":"` + mr.Shape + `"}`))
	}))
	defer control.Close()
	h, err := plugin(t).newHandler(context.Background(), nextHandler(),
		map[string]any{"pluginSecret": "s", "controlURL": control.URL}, "models")
	if err != nil {
		t.Fatal(err)
	}
	key := "sk-pg-" + strings.Repeat("0a", 24)
	for _, tt := range []struct{ name, path, header, want string }{
		{"openai", "/v1/models", "Authorization", "openai"},
		{"unprefixed anthropic", "/models", "X-Api-Key", "anthropic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			v := key
			if tt.header == "Authorization" {
				v = "Bearer " + key
			}
			req.Header.Set(tt.header, v)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 || rec.Body.String() != `{"list":"`+tt.want+`"}` {
				t.Fatalf("got %d %s, want the control service's %s list", rec.Code, rec.Body, tt.want)
			}
		})
	}
	if len(shapes) != 2 {
		t.Fatalf("control service called %d times, want 2", len(shapes))
	}
}

// Through the real controlsvc: count_tokens on an anthropic group reaches the account's
// count_tokens endpoint, on an openai group it is estimated; neither is billed or holds a
// slot, and /responses without /v1 is served as /v1/responses.
func TestCountTokensAndUnprefixedUnderYaegi(t *testing.T) {
	s := getStack(t)
	anth := s.seedOn(t, "anthropic", accountSpec{name: "a", priority: 1})
	oai := s.seed(t, accountSpec{name: "o", priority: 1, script: &fakeupstream.Script{Text: "hello"}})
	const body = `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"count me"}]}`
	oaiBody := strings.Replace(body, "claude-sonnet-4-5", "gpt-4o", 1)
	estimate := `{"input_tokens":` + itoa(int64((len(oaiBody)+3)/4)) + `}` // a quarter of the bytes, rounded up

	rec := serve(t, s.handler, "/v1/messages/count_tokens", map[string]string{"X-Api-Key": anth.key, "anthropic-version": "2023-06-01"}, body)
	if rec.Code != 200 || rec.Body.String() != `{"input_tokens":4242}` {
		t.Fatalf("anthropic group: got %d %s, want the fake's count", rec.Code, rec.Body)
	}
	ups := s.upstreamRequests(anth.accounts[0].cred)
	if len(ups) != 1 || ups[0].Path != "/v1/messages/count_tokens" || !strings.Contains(ups[0].Body, "count me") {
		t.Fatalf("fake saw %+v, want one count_tokens request with the client's body", ups)
	}
	rec = serve(t, s.handler, "/messages/count_tokens", bearer(oai.key), oaiBody)
	if rec.Code != 200 || rec.Body.String() != estimate {
		t.Fatalf("openai group: got %d %s, want the estimate %s", rec.Code, rec.Body, estimate)
	}

	rec = serve(t, s.handler, "/responses", bearer(oai.key), `{"model":"gpt-4o","input":"hi"}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "hello") {
		t.Fatalf("/responses: got %d %s, want the reply", rec.Code, rec.Body)
	}
	if got := s.upstreamRequests(oai.accounts[0].cred); len(got) != 1 || got[0].Path != "/v1/responses" {
		t.Fatalf("fake saw %+v, want one /v1/responses request", got)
	}
	rows := s.waitUsage(t, oai.keyID, 1)
	if len(rows) != 1 || rows[0].Path != "/v1/responses" {
		t.Fatalf("usage rows %+v, want only the /v1/responses request", rows)
	}
	if rows, err := s.usageRows(anth.keyID, 0, time.Second); err != nil || len(rows) != 0 {
		t.Fatalf("anthropic key usage %+v (%v), want none: count_tokens is never billed", rows, err)
	}
	s.waitIdle(t, anth)
	s.waitIdle(t, oai)
}
