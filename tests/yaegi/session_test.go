package yaegi

import (
	"fmt"
	"net/http"
	"testing"
)

// The content seed hashes the API key (docs/design.md, "Sticky sessions"): one user's turns
// stick to one account, while another user of the group sending the same first message is
// not bound to it and goes to the least recently used account of equal priority, the other
// one.
func TestContentSeedIsPerKey(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1}, accountSpec{name: "b", priority: 1})
	var k struct {
		Key string `json:"key"`
	}
	if err := s.admin.call(http.MethodPost, "/api-keys", map[string]any{"user_id": tn.userID, "group_id": tn.groupID,
		"name": "second-" + fmt.Sprint(tn.keyID)}, http.StatusCreated, &k); err != nil || k.Key == "" {
		t.Fatalf("second key: %v", err)
	}
	counts := func() map[int64]int {
		out := make(map[int64]int)
		for _, a := range tn.accounts {
			out[a.id] = len(s.upstreamRequests(a.cred))
		}
		return out
	}
	send := func(key, body string) int64 {
		t.Helper()
		before := counts()
		rec := serve(t, s.handler, "/v1/responses", bearer(key), body)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		for id, n := range counts() {
			if n == before[id]+1 {
				return id
			}
		}
		t.Fatal("no account got the request")
		return 0
	}
	const turn1 = `{"model":"gpt-4o","input":[{"role":"user","content":"the same question"}]}`
	const turn2 = `{"model":"gpt-4o","input":[{"role":"user","content":"the same question"},` +
		`{"role":"assistant","content":"an answer"},{"role":"user","content":"and then?"}]}`
	first := send(tn.key, turn1)
	if got := send(tn.key, turn2); got != first {
		t.Fatalf("the second turn went to account %d, want its content-bound account %d", got, first)
	}
	if got := send(k.Key, turn1); got == first {
		t.Fatalf("another key's identical conversation went to the first key's bound account %d", got)
	}
	s.waitIdle(t, tn)
}
