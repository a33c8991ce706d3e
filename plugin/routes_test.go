package plugin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNormalisePath(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"responses", "/v1/responses", "/v1/responses"},
		{"responses unprefixed", "/responses", "/v1/responses"},
		{"openai alias", "/openai/v1/responses", "/v1/responses"},
		{"compact unprefixed", "/responses/compact", "/v1/responses/compact"},
		{"chat unprefixed", "/chat/completions", "/v1/chat/completions"},
		{"messages unprefixed", "/messages", "/v1/messages"},
		{"count_tokens unprefixed", "/messages/count_tokens", "/v1/messages/count_tokens"},
		{"models unprefixed", "/models", "/v1/models"},
		{"one model unprefixed", "/models/gpt-4o", "/v1/models/gpt-4o"},
		{"unknown stays", "/v1/embeddings", "/v1/embeddings"},
		{"unprefixed unknown stays", "/embeddings", "/embeddings"},
		{"trailing slash stays", "/responses/", "/responses/"},
		{"admin stays", "/api/v1/admin/users", "/api/v1/admin/users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := normalisePath(tt.in); got != tt.want {
				t.Fatalf("normalisePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Unknown paths under the gateway's routes answer a JSON 404 in the path's error shape;
// paths outside them go to next. None of them reaches controlsvc.
func TestUnknownPathShapes(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	p := newTestPlugin(t, stub, nil)
	tests := []struct {
		name, method, path string
		header             map[string]string
		wantShape          string // "" = next's 418
		wantType           string
	}{
		{name: "unknown /v1 path", method: "POST", path: "/v1/embeddings", wantShape: "openai", wantType: "invalid_request_error"},
		{name: "GET on an AI path", method: "GET", path: "/v1/responses", wantShape: "openai", wantType: "invalid_request_error"},
		{name: "trailing slash", method: "POST", path: "/v1/responses/", wantShape: "openai", wantType: "invalid_request_error"},
		{name: "under messages", method: "POST", path: "/v1/messages/batches", wantShape: "anthropic", wantType: "not_found_error"},
		{name: "messages trailing slash", method: "POST", path: "/v1/messages/", wantShape: "anthropic", wantType: "not_found_error"},
		{name: "anthropic-version", method: "POST", path: "/v1/complete", header: map[string]string{"anthropic-version": "2023-06-01"},
			wantShape: "anthropic", wantType: "not_found_error"},
		{name: "x-api-key", method: "GET", path: "/v1/files", header: map[string]string{"x-api-key": "k"},
			wantShape: "anthropic", wantType: "not_found_error"},
		{name: "unprefixed unknown", method: "POST", path: "/models/x", wantShape: "openai", wantType: "invalid_request_error"},
		{name: "GET count_tokens", method: "GET", path: "/v1/messages/count_tokens", wantShape: "anthropic", wantType: "not_found_error"},
		{name: "POST models", method: "POST", path: "/v1/models", wantShape: "openai", wantType: "invalid_request_error"},
		{name: "GET compact", method: "GET", path: "/v1/responses/compact", wantShape: "openai", wantType: "invalid_request_error"},
		{name: "admin API goes to next", method: "GET", path: "/api/v1/admin/users"},
		{name: "ping goes to next", method: "GET", path: "/ping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{}`))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, req)
			if tt.wantShape == "" {
				if rec.Code != http.StatusTeapot || rec.Body.String() != "next" {
					t.Fatalf("got %d %q, want next's 418", rec.Code, rec.Body.String())
				}
				return
			}
			if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q %s, want a JSON 404", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			shape, typ, msg := errorOf(t, rec.Body.Bytes())
			if want := "Invalid URL (" + tt.method + " " + tt.path + ")"; shape != tt.wantShape || typ != tt.wantType || msg != want {
				t.Fatalf("got %s %s %q, want %s %s %q", shape, typ, msg, tt.wantShape, tt.wantType, want)
			}
		})
	}
	if n := len(stub.admitCalls()); n != 0 || len(stub.calls()) != 0 {
		t.Fatalf("%d admit calls and %v control calls for unhandled requests", n, stub.calls())
	}
}

// The unprefixed routes are the /v1 ones: admitted and sent upstream on the /v1 path.
func TestUnprefixedRoutesServed(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("sk-up", okReply("hi"))
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "sk-up"})
	h := newTestHandler(t, stub, nil)
	tests := []struct{ name, path, want string }{
		{"responses", "/responses", pathResponses},
		{"chat", "/chat/completions", pathChat},
		{"openai alias", "/openai/v1/responses", pathResponses},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, tt.path, `{"model":"gpt-4o","input":"hi","messages":[]}`, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
			admits := stub.admitCalls()
			if len(admits) != i+1 || admits[i].Path != tt.want {
				t.Fatalf("admit calls %+v, want path %s", admits, tt.want)
			}
			rr := up.recorded()
			if len(rr) != i+1 || rr[i].path != tt.want {
				t.Fatalf("upstream saw %d requests, last %q, want %s", len(rr), rr[len(rr)-1].path, tt.want)
			}
		})
	}
	stub.waitReports(len(tests))
}

// GET /v1/models relays controlsvc's POST /internal/v1/models answer (contract B), in the
// shape the request's headers ask for.
func TestModelsRelay(t *testing.T) {
	t.Parallel()
	const openaiList = `{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"poolgate"}]}`
	const anthropicList = `{"data":[{"type":"model","id":"claude-x","display_name":"claude-x","created_at":"2025-01-01T00:00:00Z"}],"has_more":false,"first_id":"claude-x","last_id":"claude-x"}`
	stub := newContractStub(t)
	stub.otherHook = func(w http.ResponseWriter, path string, body []byte) bool {
		if path != modelsPath {
			return false
		}
		var mr modelsRequest
		if err := json.Unmarshal(body, &mr); err != nil || mr.APIKey == "" {
			http.Error(w, "bad models body", http.StatusBadRequest)
			return true
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case mr.APIKey != testClientKey:
			w.Header().Set(headerReject, "auth")
			w.WriteHeader(http.StatusUnauthorized)
			if mr.Shape == modelsShapeAnthropic {
				w.Write([]byte(`{"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}`))
			} else {
				w.Write([]byte(`{"error":{"type":"authentication_error","message":"Invalid API key"}}`))
			}
		case mr.Shape == modelsShapeAnthropic:
			w.Write([]byte(anthropicList))
		default:
			w.Write([]byte(openaiList))
		}
		return true
	}
	p := newTestPlugin(t, stub, nil)
	otherKey := "sk-pg-" + strings.Repeat("ab", 24)
	tests := []struct {
		name       string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   string
		wantShape  string // of the call to controlsvc
	}{
		{name: "openai", path: "/v1/models", header: map[string]string{"Authorization": "Bearer " + testClientKey},
			wantStatus: 200, wantBody: openaiList, wantShape: "openai"},
		{name: "unprefixed", path: "/models", header: map[string]string{"Authorization": "Bearer " + testClientKey},
			wantStatus: 200, wantBody: openaiList, wantShape: "openai"},
		{name: "anthropic-version", path: "/v1/models", header: map[string]string{"Authorization": "Bearer " + testClientKey, "anthropic-version": "2023-06-01"},
			wantStatus: 200, wantBody: anthropicList, wantShape: "anthropic"},
		{name: "x-api-key", path: "/v1/models", header: map[string]string{"x-api-key": testClientKey},
			wantStatus: 200, wantBody: anthropicList, wantShape: "anthropic"},
		{name: "refused key relayed", path: "/v1/models", header: map[string]string{"x-api-key": otherKey},
			wantStatus: 401, wantBody: `{"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}`, wantShape: "anthropic"},
		{name: "malformed key answered without a call", path: "/v1/models", header: map[string]string{"Authorization": "Bearer nope"},
			wantStatus: 401, wantBody: `{"error":{"type":"authentication_error","message":"Invalid API key"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(stub.calls())
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			calls := stub.calls()[before:]
			if tt.wantShape == "" {
				if len(calls) != 0 {
					t.Fatalf("control calls %v, want none", calls)
				}
				return
			}
			if len(calls) != 1 || !strings.HasPrefix(calls[0], modelsPath+" ") || !strings.Contains(calls[0], `"shape":"`+tt.wantShape+`"`) {
				t.Fatalf("control calls %v, want one %s call with shape %s", calls, modelsPath, tt.wantShape)
			}
		})
	}
	if n := len(stub.admitCalls()); n != 0 {
		t.Fatalf("%d admit calls for GET /v1/models", n)
	}
}

// A controlsvc without the models endpoint (or unwell) is a 503 in the client's shape.
func TestModelsControlUnavailable(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t) // answers 404 without X-Poolgate-Reject
	p := newTestPlugin(t, stub, nil)
	req := httptest.NewRequest(http.MethodGet, "/v1/models", nil)
	req.Header.Set("x-api-key", testClientKey)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	shape, typ, _ := errorOf(t, rec.Body.Bytes())
	if rec.Code != http.StatusServiceUnavailable || shape != "anthropic" || typ != typeAPI {
		t.Fatalf("got %d %s, want 503 api_error in Anthropic's shape", rec.Code, rec.Body)
	}
}

func TestModelID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"/v1/models/gpt-4o", "gpt-4o", true},
		{"/v1/models/claude-opus-4-5-20251101", "claude-opus-4-5-20251101", true},
		{"/v1/models/", "", false},
		{"/v1/models/a/b", "", false},
		{"/v1/models/" + strings.Repeat("m", maxModelID+1), "", false},
		{"/v1/models", "", false},
		{"/v1/modelsx", "", false},
	}
	for _, tt := range tests {
		if got, ok := modelID(tt.path); got != tt.want || ok != tt.ok {
			t.Errorf("modelID(%.40q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}
