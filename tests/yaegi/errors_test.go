package yaegi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestValidationErrors(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1})
	const (
		callIDMsg  = "function_call_output requires call_id or previous_response_id; if relying on history, ensure store=true and reuse previous_response_id"
		itemRefMsg = "function_call_output requires item_reference ids matching each call_id, or previous_response_id/tool_call context; if relying on history, ensure store=true and reuse previous_response_id"
	)
	tests := []struct {
		name    string
		path    string
		body    string
		wantMsg string // "" = valid, must reach the upstream and get 200
	}{
		{name: "empty body", path: "/v1/responses", body: "", wantMsg: "Request body is empty"},
		{name: "invalid JSON", path: "/v1/responses", body: `{"model":`, wantMsg: "Failed to parse request body"},
		{name: "model missing", path: "/v1/responses", body: `{"input":"hi"}`, wantMsg: "model is required"},
		{name: "model not a string", path: "/v1/chat/completions", body: `{"model":5,"messages":[]}`, wantMsg: "model is required"},
		{name: "model empty", path: "/v1/responses", body: `{"model":"","input":"hi"}`, wantMsg: "model is required"},
		{name: "stream not a boolean", path: "/v1/responses", body: `{"model":"gpt-4o","stream":"yes"}`, wantMsg: "invalid stream field type"},
		{name: "function_call_output without call_id", path: "/v1/responses",
			body: `{"model":"gpt-4o","input":[{"type":"function_call_output","output":"42"}]}`, wantMsg: callIDMsg},
		{name: "function_call_output without item_reference", path: "/v1/responses",
			body: `{"model":"gpt-4o","input":[{"type":"function_call_output","call_id":"call_1","output":"42"}]}`, wantMsg: itemRefMsg},
		{name: "function_call_output with item_reference", path: "/v1/responses",
			body: `{"model":"gpt-4o","input":[{"type":"item_reference","id":"call_1"},{"type":"function_call_output","call_id":"call_1","output":"42"}]}`},
		{name: "function_call_output with previous_response_id", path: "/v1/responses",
			body: `{"model":"gpt-4o","previous_response_id":"resp_1","input":[{"type":"function_call_output","output":"42"}]}`},
		{name: "function_call_output with its function_call", path: "/v1/responses",
			body: `{"model":"gpt-4o","input":[{"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"call_1","output":"42"}]}`},
	}
	valid := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, s.handler, tt.path, bearer(tn.key), tt.body)
			if tt.wantMsg == "" {
				valid++
				if rec.Code != 200 {
					t.Fatalf("status %d, want 200 (a valid request); body %s", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body)
			}
			e := decodeError(t, rec)
			if e.Error.Type != "invalid_request_error" || e.Error.Message != tt.wantMsg {
				t.Errorf("error %+v, want invalid_request_error %q", e.Error, tt.wantMsg)
			}
		})
	}
	if got := len(s.upstreamRequests(tn.accounts[0].cred)); got != valid {
		t.Errorf("the fake saw %d requests, want only the %d valid ones", got, valid)
	}

	t.Run("body too large", func(t *testing.T) {
		h, err := plugin(t).newHandler(context.Background(), nextHandler(), s.pluginSettings(map[string]any{"maxBodyBytes": "1048576"}), "small-body")
		if err != nil {
			t.Fatal(err)
		}
		body := `{"model":"gpt-4o","input":"` + strings.Repeat("x", 1<<20) + `"}`
		rec := serve(t, h, "/v1/responses", bearer(tn.key), body)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413; body %s", rec.Code, rec.Body)
		}
		if e := decodeError(t, rec); e.Error.Type != "invalid_request_error" || e.Error.Message != "Request body too large, limit is 1MB" {
			t.Errorf("error %+v, want invalid_request_error \"Request body too large, limit is 1MB\"", e.Error)
		}
	})
	s.waitIdle(t, tn)
}

func TestAuthentication(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1})
	const body = `{"model":"gpt-4o","input":"hi"}`
	tests := []struct {
		name     string
		hdr      map[string]string
		wantCode int
	}{
		{name: "missing key", hdr: nil, wantCode: 401},
		{name: "unknown key", hdr: bearer("sk-pg-not-a-key"), wantCode: 401},
		{name: "empty bearer", hdr: map[string]string{"Authorization": "Bearer "}, wantCode: 401},
		{name: "valid bearer", hdr: bearer(tn.key), wantCode: 200},
		{name: "valid x-api-key", hdr: map[string]string{"x-api-key": tn.key}, wantCode: 200},
		{name: "valid x-goog-api-key", hdr: map[string]string{"x-goog-api-key": tn.key}, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, s.handler, "/v1/responses", tt.hdr, body)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode == 401 {
				want := `{"error":{"type":"authentication_error","message":"Invalid API key"}}`
				if got := strings.TrimSpace(rec.Body.String()); got != want {
					t.Errorf("body %s, want %s", got, want)
				}
			}
		})
	}

	t.Run("deleted key stops within 5s", func(t *testing.T) {
		s.admin.do(t, http.MethodDelete, "/api-keys/"+itoa(tn.keyID), nil, http.StatusNoContent, nil)
		deadline := time.Now().Add(5 * time.Second)
		for {
			rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), body)
			if rec.Code == 401 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("deleted key still answered %d after 5s", rec.Code)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	s.waitIdle(t, tn)
}

// wellFormedKey has the gateway's key format, so the plugin's pre-body check lets it through
// to admission (no such key exists).
const wellFormedKey = "sk-pg-0123456789abcdef0123456789abcdef0123456789abcdef"

func TestControlServiceUnavailable(t *testing.T) {
	s := getStack(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does net/http watch the connection and cancel
		// the context when the client gives up.
		_, _ = io.Copy(io.Discard, r.Body)
		select { // never answers in time
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hanging.Close()
	defer close(release) // runs first: Close waits for handlers
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError) // no X-Poolgate-Reject: unwell
	}))
	defer broken.Close()
	tests := []struct {
		name       string
		controlURL string
	}{
		{name: "unreachable", controlURL: "http://127.0.0.1:" + itoa(int64(port))},
		{name: "hangs", controlURL: hanging.URL},
		{name: "answers 500", controlURL: broken.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := plugin(t).newHandler(context.Background(), nextHandler(),
				// The admit call's bound is admissionTimeout + maxWait.
				s.pluginSettings(map[string]any{"controlURL": tt.controlURL, "admissionTimeout": "1s", "maxWait": "0s"}), "no-control-"+tt.name)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			rec := serve(t, h, "/v1/responses", bearer(wellFormedKey), `{"model":"gpt-4o","input":"hi"}`)
			if rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503; body %s", rec.Code, rec.Body)
			}
			if e := decodeError(t, rec); e.Error.Type != "api_error" || e.Error.Message != "Service temporarily unavailable" {
				t.Errorf("error %+v, want api_error \"Service temporarily unavailable\"", e.Error)
			}
			if el := time.Since(start); el > 4*time.Second {
				t.Errorf("took %s with a 1s admission timeout, want a bounded answer", el)
			}
		})
	}
}
