package admission

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Every refusal admission can give reaches a /v1/messages client with one of Anthropic's
// error types (https://docs.anthropic.com/en/api/errors).
func TestAnthropicErrorTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rej  *Rejection
		want string
	}{
		{"auth", RejectAuth, "authentication_error"},
		{"invalid", RejectInvalid("model is required"), "invalid_request_error"},
		{"unpriced model", rejectUnpriced("claude-x"), "invalid_request_error"},
		{"endpoint needs an anthropic group", rejectNeedsAnthropic, "invalid_request_error"},
		{"user concurrency", rejectUserConcurrency, "rate_limit_error"},
		{"user queue full", rejectUserQueueFull, "rate_limit_error"},
		{"account queue full", rejectAccountQueueFull, "rate_limit_error"},
		{"account concurrency", rejectAccountConcurrency, "rate_limit_error"},
		{"no account", rejectNoAccount, "api_error"},
		{"restricted model", rejectRestricted, "api_error"},
		{"model not found", rejectModelNotFound("claude-x"), "not_found_error"},
		{"claude_code_only", rejectClaudeCodeOnly, "permission_error"},
		{"key expired", rejectKeyExpired, "permission_error"},
		{"insufficient balance", rejectInsufficientBalance, "billing_error"},
		{"no subscription", billingRefusal(&store.BillingRefusal{Kind: store.RefuseNoSubscription, Message: "x"}), "billing_error"},
		{"window exhausted", billingRefusal(&store.BillingRefusal{Kind: store.RefuseWindowExhausted, Message: "x", RetryAfterSeconds: 5}), "rate_limit_error"},
		// A quota refusal is Anthropic's 402 billing_error on /v1/messages (docs/billing.md, "Billing modes and eligibility").
		{"key quota", billingRefusal(&store.BillingRefusal{Kind: store.RefuseKeyQuota, Message: "x"}), "billing_error"},
		// Statuses admission does not use today still map to Anthropic's types.
		{"unknown 529", &Rejection{status: 529, errType: "upstream_error"}, "overloaded_error"},
		{"unknown 502", &Rejection{status: http.StatusBadGateway, errType: "upstream_error"}, "api_error"},
		{"unknown 402", &Rejection{status: http.StatusPaymentRequired, errType: "insufficient_funds"}, "billing_error"},
		{"unknown 413", &Rejection{status: http.StatusRequestEntityTooLarge, errType: "too_big"}, "request_too_large"},
		{"unknown 400", &Rejection{status: http.StatusBadRequest, errType: "bad"}, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(rejectBody(AnthropicPath, PlatformAnthropic, tt.rej))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
					Code    *string
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Type != "error" || got.Error.Type != tt.want || got.Error.Message != tt.rej.message || got.Error.Code != nil {
				t.Fatalf("body = %s, want type error with error.type %q and the message", b, tt.want)
			}
		})
	}
}

// The envelope follows the path and the group's platform.
func TestRejectBodyEnvelopes(t *testing.T) {
	t.Parallel()
	quota := billingRefusal(&store.BillingRefusal{Kind: store.RefuseKeyQuota, Message: "API key quota exhausted"})
	tests := []struct {
		name, path, platform string
		rej                  *Rejection
		want                 string
	}{
		{"openai Responses", "/v1/responses", platformOpenAI, rejectClaudeCodeOnly,
			`{"error":{"type":"permission_error","message":"` + msgClaudeCodeOnly + `"}}`},
		{"openai Responses with code", "/v1/responses", platformOpenAI, quota,
			`{"error":{"type":"insufficient_quota","message":"API key quota exhausted","code":"insufficient_quota"}}`},
		{"Responses on anthropic: code is the type", "/v1/responses", PlatformAnthropic, RejectAuth,
			`{"error":{"code":"authentication_error","message":"Invalid API key"}}`},
		{"Responses on anthropic: code is the OpenAI code", "/openai/v1/responses", PlatformAnthropic, quota,
			`{"error":{"code":"insufficient_quota","message":"API key quota exhausted"}}`},
		{"Responses before authentication", "/v1/responses", "", RejectAuth,
			`{"error":{"type":"authentication_error","message":"Invalid API key"}}`},
		{"Chat on anthropic", "/v1/chat/completions", PlatformAnthropic, RejectAuth,
			`{"error":{"type":"authentication_error","message":"Invalid API key"}}`},
		{"Messages", AnthropicPath, PlatformAnthropic, rejectModelNotFound("m"),
			`{"type":"error","error":{"type":"not_found_error","message":"Model \"m\" is not supported by any configured account in this group"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(rejectBody(tt.path, tt.platform, tt.rej))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("body = %s, want %s", b, tt.want)
			}
		})
	}
}
