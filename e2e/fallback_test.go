package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// A context-length 400 falls back to the group's configured larger model (docs/design.md,
// "Model fallbacks"): the client gets 200, the record shows the requested and the served
// model, and it is priced by the served one.
func TestContextLengthFallsBackToTheConfiguredModel(t *testing.T) {
	cred := unique("sk-fallback")
	programCredential(t, cred, obj{
		"text":  "answered by the larger model",
		"usage": obj{"input_tokens": 1000, "output_tokens": 100},
		"models": obj{"gpt-4o-mini": obj{"status": 400, "body": obj{"error": obj{
			"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
			"type":    "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}}},
	})
	tn, accts := newTenant(t, accountSpec{Credential: cred, Priority: 1})
	mustAdmin(t, "PATCH", fmt.Sprintf("/groups/%d", tn.GroupID), obj{
		"model_fallbacks": obj{"gpt-4o-mini": obj{"context_length_exceeded": []string{"gpt-4o"}}}})

	code, _, body := post(t, "/v1/chat/completions", tn.Key,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a prompt too long for the small model"}]}`, nil)
	if code != 200 || !strings.Contains(body, "answered by the larger model") {
		t.Fatalf("got %d %s, want 200 from the fallback model", code, body)
	}
	reqs := upstreamRequestsFor(t, cred)
	if len(reqs) != 2 || !strings.Contains(reqs[0].Body, `"gpt-4o-mini"`) || !strings.Contains(reqs[1].Body, `"model":"gpt-4o"`) {
		t.Fatalf("upstream requests %+v, want gpt-4o-mini then gpt-4o", reqs)
	}
	rec := usageFor(t, tn.KeyID, 1)[0]
	if rec["model"] != "gpt-4o-mini" || rec["served_model"] != "gpt-4o" || rec["upstream_model"] != "gpt-4o" {
		t.Fatalf("record model %v served_model %v upstream_model %v, want gpt-4o-mini, gpt-4o, gpt-4o",
			rec["model"], rec["served_model"], rec["upstream_model"])
	}
	// gpt-4o: 1000 input × 2.50 + 100 output × 10.00 per million = 3500 micros
	// (gpt-4o-mini would cost 210).
	if cost := usd(rec, "cost_usd"); cost != 3500 || num(rec, "status") != 200 {
		t.Fatalf("record cost %d micros status %d, want 3500 and 200", cost, num(rec, "status"))
	}
	detail := mustAdmin(t, "GET", "/usage/"+rec["request_id"].(string), nil)
	attempts, _ := detail["attempts"].([]any)
	if len(attempts) != 2 || attempts[0].(obj)["error_class"] != "context_length_exceeded" ||
		num(attempts[0].(obj), "account_id") != accts[0] || num(attempts[1].(obj), "account_id") != accts[0] {
		t.Fatalf("attempts %v, want the context-length refusal then the same account", attempts)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
