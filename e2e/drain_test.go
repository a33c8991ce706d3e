package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Answers that reached the client are billed (docs/billing.md, "Disconnects, drains and estimates"), end to
// end through Traefik: a client that leaves a committed stream is billed the upstream's own
// usage after the drain, with its slots held meanwhile and freed after; a non-stream answer
// of 5 MiB yields its usage.

func TestClientDisconnectMidStreamIsBilledFromUpstream(t *testing.T) {
	cred := unique("sk-drain")
	// About 1.5 s of events after the first delta: within the e2e drainTimeout (3 s).
	programCredential(t, cred, obj{"text": fiveWords, "chunk_delay_ms": 150,
		"usage": obj{"input_tokens": 400, "output_tokens": 90}})
	tn, accts := newTenant(t, accountSpec{Credential: cred})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", gw.GatewayURL+"/v1/responses", strings.NewReader(responsesStreamBody))
	req.Header.Set("Authorization", "Bearer "+tn.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "event: response.output_text.delta") {
	}
	if sc.Err() != nil {
		t.Fatalf("reading to the first delta: %v", sc.Err())
	}
	cancel() // the client leaves after the first word
	resp.Body.Close()
	// The slots stay held while the answer drains (over 1 s more of events), and are
	// freed after it.
	time.Sleep(500 * time.Millisecond)
	if busy := busySlots(mustAdmin(t, "GET", "/concurrency", nil), "users", "user_id", []int64{tn.UserID}); busy == "" {
		t.Errorf("the user's slot was freed while the answer was still draining")
	}

	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "status") != 499 || rec["error_class"] != "client_gone" || num(rec, "input_tokens") != 400 ||
		num(rec, "output_tokens") != 90 || usd(rec, "cost_usd") <= 0 {
		t.Errorf("usage record = %v, want 499 client_gone billed the upstream's 400 input and 90 output tokens", rec)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestLargeNonStreamAnswerIsBilled(t *testing.T) {
	// 5 MiB of text and the usage at the end, where every API puts it.
	body := `{"id":"chatcmpl-big","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("token ", (5<<20)/6) + `"},"finish_reason":"length"}],"usage":{"prompt_tokens":20,"completion_tokens":50000,"total_tokens":50020}}`
	cred := unique("sk-big")
	programCredential(t, cred, obj{"body": body})
	tn, accts := newTenant(t, accountSpec{Credential: cred})

	code, _, got := post(t, "/v1/chat/completions", tn.Key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a lot"}]}`, nil)
	if code != 200 || len(got) != len(body) {
		t.Fatalf("status %d, %d bytes of %d", code, len(got), len(body))
	}
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "status") != 200 || num(rec, "input_tokens") != 20 || num(rec, "output_tokens") != 50000 || usd(rec, "cost_usd") <= 0 {
		t.Errorf("usage record = %v, want 200 billed 20 input and 50000 output tokens", rec)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
