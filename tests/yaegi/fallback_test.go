package yaegi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// A context-length 400 under a group with a context_length_exceeded fallback is failed over
// by the interpreted plugin to the larger model on the same account, whose body names it.
func TestContextLengthFallbackUnderYaegi(t *testing.T) {
	s := getStack(t)
	tooLong := fakeupstream.Script{Status: 400, Body: fakeupstream.RawBody(
		`{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}`)}
	tn := s.seed(t, accountSpec{name: "a", priority: 1, script: &fakeupstream.Script{Text: "served large",
		Models: map[string]fakeupstream.Script{"gpt-4o-mini": tooLong}}})
	if err := s.admin.call(http.MethodPatch, fmt.Sprintf("/groups/%d", tn.groupID), map[string]any{
		"model_fallbacks": map[string]any{"gpt-4o-mini": map[string]any{"context_length_exceeded": []string{"gpt-4o"}}},
	}, http.StatusOK, nil); err != nil {
		t.Fatalf("setting model_fallbacks: %v", err)
	}
	rec := serve(t, s.handler, "/v1/chat/completions", bearer(tn.key),
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a very long prompt"}]}`)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s, want 200 from the fallback model", rec.Code, rec.Body)
	}
	reqs := s.upstreamRequests(tn.accounts[0].cred)
	if len(reqs) != 2 {
		t.Fatalf("%d upstream requests, want 2 (the small model, then the large one)", len(reqs))
	}
	var sent struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal([]byte(reqs[1].Body), &sent); err != nil || sent.Model != "gpt-4o" {
		t.Fatalf("the fallback attempt sent model %q (%v)", sent.Model, err)
	}
	s.waitIdle(t, tn)
}
