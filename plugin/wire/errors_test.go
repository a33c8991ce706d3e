package wire

import (
	"encoding/json"
	"testing"
)

// AnthropicErrorType gives every status the type https://docs.anthropic.com/en/api/errors
// documents for it and keeps Anthropic's own types; before this package the plugin's table
// (other 4xx → api_error, no 504 on controlsvc's) and controlsvc's differed.
func TestAnthropicErrorType(t *testing.T) {
	tests := []struct {
		name   string
		status int
		typ    string
		want   string
	}{
		{"own type kept over its status", 503, TypeRateLimit, TypeRateLimit},
		{"billing kept", 403, TypeBilling, TypeBilling},
		{"timeout kept", 502, TypeTimeout, TypeTimeout},
		{"overloaded kept", 503, TypeOverloaded, TypeOverloaded},
		{"api_error kept on a 4xx", 400, TypeAPI, TypeAPI},
		{"400", 400, "", TypeInvalidRequest},
		{"401", 401, "", TypeAuthentication},
		{"402", 402, "insufficient_quota", TypeBilling},
		{"403", 403, "", TypePermission},
		{"404 model_not_found", 404, "model_not_found", TypeNotFound},
		{"413", 413, "", TypeRequestTooLarge},
		{"429 rate_limit_exceeded", 429, "rate_limit_exceeded", TypeRateLimit},
		{"other 4xx is invalid_request_error", 422, "", TypeInvalidRequest},
		{"409", 409, "", TypeInvalidRequest},
		{"500", 500, "", TypeAPI},
		{"502 upstream_error", 502, TypeUpstream, TypeAPI},
		{"503", 503, "", TypeAPI},
		{"504", 504, TypeUpstream, TypeTimeout},
		{"529", 529, "", TypeOverloaded},
		{"in-stream error at 200", 200, TypeUpstream, TypeAPI},
		{"no status", 0, "", TypeAPI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AnthropicErrorType(tc.status, tc.typ); got != tc.want {
				t.Errorf("AnthropicErrorType(%d, %q) = %q, want %q", tc.status, tc.typ, got, tc.want)
			}
		})
	}
}

// The envelopes render as the APIs write them: OpenAI's code only when set.
func TestErrorEnvelopes(t *testing.T) {
	tests := []struct {
		name string
		v    interface{}
		want string
	}{
		{"openai", OpenAIError{Error: ErrorDetail{Type: TypeAPI, Message: "m"}}, `{"error":{"type":"api_error","message":"m"}}`},
		{"openai with code", OpenAIError{Error: ErrorDetail{Type: TypeRateLimit, Message: "m", Code: "rate_limit_exceeded"}},
			`{"error":{"type":"rate_limit_error","message":"m","code":"rate_limit_exceeded"}}`},
		{"anthropic", AnthropicError{Type: "error", Error: ErrorDetail{Type: TypeOverloaded, Message: "m"}},
			`{"type":"error","error":{"type":"overloaded_error","message":"m"}}`},
		{"code", CodeError{Error: CodeDetail{Code: "upstream_error", Message: "m"}}, `{"error":{"code":"upstream_error","message":"m"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil || string(b) != tc.want {
				t.Errorf("got %s (%v), want %s", b, err, tc.want)
			}
		})
	}
}

// The error.code of a response.failed event, by error type; anything unknown is server_error.
func TestResponsesErrorCode(t *testing.T) {
	t.Parallel()
	tests := []struct{ typ, want string }{
		{"rate_limit_error", "rate_limit_exceeded"},
		{"invalid_request_error", "invalid_request"},
		{"permission_error", "permission_denied"},
		{"authentication_error", "authentication_failed"},
		{"upstream_error", "upstream_error"},
		{"api_error", "server_error"},
		{"server_error", "server_error"},
		{"", "server_error"},
		{"something_else", "server_error"},
	}
	for _, tt := range tests {
		t.Run("type "+tt.typ, func(t *testing.T) {
			t.Parallel()
			if got := ResponsesErrorCode(tt.typ); got != tt.want {
				t.Errorf("ResponsesErrorCode(%q) = %q, want %q", tt.typ, got, tt.want)
			}
		})
	}
}
