package plugin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

func TestValidationErrors(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", okReply("hi"))
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	p := newTestPlugin(t, stub, func(c *Config) { c.MaxBodyBytes = 1 << 20 })

	const (
		fcoNoCallID = `{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`
		fcoNoRef    = `{"model":"m","input":[{"type":"function_call_output","call_id":"c1","output":"x"}]}`
	)
	tests := []struct {
		name       string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantType   string
		wantMsg    string
		wantShape  string
	}{
		{name: "no key", path: "/v1/responses", body: `{"model":"m"}`, header: map[string]string{"Authorization": ""},
			wantStatus: 401, wantType: "authentication_error", wantMsg: "Invalid API key"},
		{name: "non-bearer authorization only", path: "/v1/responses", body: `{"model":"m"}`, header: map[string]string{"Authorization": "Basic abc"},
			wantStatus: 401, wantType: "authentication_error", wantMsg: "Invalid API key"},
		{name: "no key on messages uses anthropic shape", path: "/v1/messages", body: `{"model":"m"}`, header: map[string]string{"Authorization": ""},
			wantStatus: 401, wantType: "authentication_error", wantMsg: "Invalid API key", wantShape: "anthropic"},
		{name: "model over 256 bytes", path: "/v1/responses", body: `{"model":"` + strings.Repeat("m", 257) + `"}`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "Invalid model"},
		{name: "model of 256 bytes", path: "/v1/responses", body: `{"model":"` + strings.Repeat("m", 256) + `"}`, wantStatus: 200},
		{name: "too large", path: "/v1/responses", body: `{"model":"m","pad":"` + strings.Repeat("x", 1<<20) + `"}`,
			wantStatus: 413, wantType: "invalid_request_error", wantMsg: "Request body too large, limit is 1MB"},
		{name: "empty", path: "/v1/chat/completions", body: ``,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "Request body is empty"},
		{name: "invalid json", path: "/v1/responses", body: `{"model":`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "Failed to parse request body"},
		{name: "invalid json on messages", path: "/v1/messages", body: `nope`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "Failed to parse request body", wantShape: "anthropic"},
		{name: "array body", path: "/v1/responses", body: `[1,2]`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "model is required"},
		{name: "model missing", path: "/v1/responses", body: `{"input":"hi"}`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "model is required"},
		{name: "model number", path: "/v1/chat/completions", body: `{"model":4}`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "model is required"},
		{name: "model empty", path: "/v1/messages", body: `{"model":""}`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "model is required", wantShape: "anthropic"},
		{name: "stream string", path: "/v1/responses", body: `{"model":"m","stream":"yes"}`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "invalid stream field type"},
		{name: "stream null", path: "/v1/chat/completions", body: `{"model":"m","stream":null}`,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: "invalid stream field type"},
		{name: "function_call_output without call_id", path: "/v1/responses", body: fcoNoCallID,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: msgCallIDRequired},
		{name: "function_call_output without item_reference", path: "/v1/responses", body: fcoNoRef,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: msgItemReference},
		{name: "alias path validates too", path: "/openai/v1/responses", body: fcoNoRef,
			wantStatus: 400, wantType: "invalid_request_error", wantMsg: msgItemReference},
		{name: "function_call_output with item_reference", path: "/v1/responses",
			body:       `{"model":"m","input":[{"type":"item_reference","id":"c1"},{"type":"function_call_output","call_id":"c1","output":"x"}]}`,
			wantStatus: 200},
		{name: "function_call_output with previous_response_id", path: "/v1/responses",
			body: `{"model":"m","previous_response_id":"resp_1","input":[{"type":"function_call_output","output":"x"}]}`, wantStatus: 200},
		{name: "function_call_output with function_call context", path: "/v1/responses",
			body:       `{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"x"}]}`,
			wantStatus: 200},
		{name: "function_call_output rule only on responses", path: "/v1/chat/completions", body: fcoNoCallID, wantStatus: 200},
		{name: "string input", path: "/v1/responses", body: `{"model":"m","input":"function_call_output"}`, wantStatus: 200},
		{name: "stream false", path: "/v1/responses", body: `{"model":"m","stream":false}`, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(stub.admitCalls())
			rec := do(p, tt.path, tt.body, tt.header)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", rec.Code, rec.Body.String(), tt.wantStatus)
			}
			admitted := len(stub.admitCalls()) > before
			if tt.wantStatus == 200 {
				if !admitted {
					t.Fatal("a valid request must be admitted")
				}
				return
			}
			if admitted {
				t.Fatal("an invalid request must not reach controlsvc")
			}
			shape, typ, msg := errorOf(t, rec.Body.Bytes())
			wantShape := tt.wantShape
			if wantShape == "" {
				wantShape = "openai"
			}
			if shape != wantShape || typ != tt.wantType || msg != tt.wantMsg {
				t.Fatalf("error = %s %q %q, want %s %q %q", shape, typ, msg, wantShape, tt.wantType, tt.wantMsg)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
}

var errReset = errors.New("connection reset")

func TestReadBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    io.Reader
		length  int64
		limit   int64
		want    string
		wantErr string
	}{
		{name: "at the limit", body: strings.NewReader("12345"), length: 5, limit: 5, want: "12345"},
		{name: "unknown length at the limit", body: strings.NewReader("12345"), length: -1, limit: 5, want: "12345"},
		{name: "one byte over", body: strings.NewReader("123456"), length: -1, limit: 5, wantErr: "Request body too large, limit is 0MB"},
		{name: "declared over", body: strings.NewReader(""), length: 3 << 20, limit: 2 << 20, wantErr: "Request body too large, limit is 2MB"},
		{name: "read error", body: io.MultiReader(strings.NewReader("{"), iotest.ErrReader(errReset)), length: -1, limit: 5, wantErr: msgReadBody},
		{name: "empty", body: strings.NewReader(""), length: 0, limit: 5, wantErr: msgEmptyBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/responses", tt.body)
			req.ContentLength = tt.length
			got, e := readBody(req, tt.limit)
			if tt.wantErr != "" {
				if e == nil || e.msg != tt.wantErr {
					t.Fatalf("readBody() error = %+v, want %q", e, tt.wantErr)
				}
				return
			}
			if e != nil || string(got) != tt.want {
				t.Fatalf("readBody() = %q, %+v; want %q", got, e, tt.want)
			}
		})
	}
}

func TestReadErrorAnswers400(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	p := newTestPlugin(t, stub, nil)
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", io.MultiReader(strings.NewReader(`{"model"`), iotest.ErrReader(errReset)))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	_, typ, msg := errorOf(t, rec.Body.Bytes())
	if rec.Code != 400 || typ != typeInvalidRequest || msg != "Failed to read request body" {
		t.Fatalf("got %d %q %q", rec.Code, typ, msg)
	}
}

func TestAPIKeyExtractionOrder(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", okReply("hi"))
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	p := newTestPlugin(t, stub, nil)
	const (
		keyA = "sk-pg-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		keyB = "sk-pg-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		keyC = "sk-pg-cccccccccccccccccccccccccccccccccccccccccccccccc"
	)
	tests := []struct {
		name   string
		header map[string]string
		want   string
	}{
		{"bearer wins", map[string]string{"Authorization": "Bearer " + keyA, "X-Api-Key": keyB, "X-Goog-Api-Key": keyC}, keyA},
		{"bearer is case-insensitive", map[string]string{"Authorization": "bearer  " + keyA + " "}, keyA},
		{"x-api-key next", map[string]string{"Authorization": "", "X-Api-Key": keyB, "X-Goog-Api-Key": keyC}, keyB},
		{"non-bearer authorization skipped", map[string]string{"Authorization": "Basic Zm9v", "X-Api-Key": keyB}, keyB},
		{"empty bearer skipped", map[string]string{"Authorization": "Bearer  ", "X-Goog-Api-Key": keyC}, keyC},
		{"x-goog-api-key last", map[string]string{"Authorization": "", "X-Goog-Api-Key": keyC}, keyC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(p, "/v1/responses", `{"model":"m"}`, tt.header)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			calls := stub.admitCalls()
			if got := calls[len(calls)-1].APIKey; got != tt.want {
				t.Fatalf("api_key sent to controlsvc = %q, want %q", got, tt.want)
			}
		})
	}
}
