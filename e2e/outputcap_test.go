package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
)

// A group with cap_output_tokens sends a request that names no output maximum upstream with
// the group's default as its limit, in the path's own field, and reserves what that limit
// can cost; a request naming its own maximum goes as the client sent it.
func TestOutputCapIsSentUpstream(t *testing.T) {
	tn, acc, cred := billingTenant(t, 10, obj{"cap_output_tokens": true, "default_max_output_tokens": 777})
	g := mustAdmin(t, "GET", fmt.Sprintf("/groups/%d", tn.GroupID), nil)
	if g["cap_output_tokens"] != true {
		t.Fatalf("group after create: %v", g)
	}
	cases := []struct {
		name, path, body, field, want string
	}{
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","input":"cap me"}`, "max_output_tokens", "777"},
		{"responses stream", "/v1/responses", `{"model":"gpt-4o-mini","input":"cap me too","stream":true}`, "max_output_tokens", "777"},
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"cap"}]}`, "max_completion_tokens", "777"},
		{"client's own maximum", "/v1/responses", `{"model":"gpt-4o-mini","input":"mine","max_output_tokens":50}`, "max_output_tokens", "50"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rid := sendBilled(t, tn.Key, c.path, c.body)
			reqs := upstreamRequestsFor(t, cred)
			if len(reqs) == 0 {
				t.Fatal("the fake upstream saw no request")
			}
			var sent map[string]json.RawMessage
			if err := json.Unmarshal([]byte(reqs[len(reqs)-1].Body), &sent); err != nil {
				t.Fatalf("upstream body: %v: %s", err, reqs[len(reqs)-1].Body)
			}
			if string(sent[c.field]) != c.want {
				t.Errorf("upstream %s = %s, want %s (body %s)", c.field, sent[c.field], c.want, reqs[len(reqs)-1].Body)
			}
			rec := recordOf(t, rid)
			if usd(rec, "reserved_usd") == 0 || usd(rec, "cost_usd") != billedCostMicros {
				t.Errorf("record = %v", rec)
			}
		})
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
}
