package plugin

import (
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// The overall request deadline (requestTimeout, docs/design.md, "Timeouts") bounds every
// attempt together: failover stops when it passes, whatever switches are left.
func TestRequestDeadlineBoundsAllAttempts(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	const accounts = 6
	var accts []stubAccount
	for i := 1; i <= accounts; i++ {
		key := "silent-" + string(rune('0'+i))
		fake.SetCredentialScript(key, fakeupstream.Script{DelayMS: 20000}) // never answers in time
		accts = append(accts, stubAccount{id: int64(i), baseURL: fakeURL, apiKey: key})
	}
	stub := newContractStub(t, accts...)
	p := newTestPlugin(t, stub, func(c *Config) {
		c.FirstTokenTimeout = "400ms" // each attempt fails over after 400 ms …
		c.RequestTimeout = "900ms"    // … but the request as a whole gets 900 ms
		c.MaxAccountSwitches = accounts - 1
	})

	start := time.Now()
	rec := do(p, "/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, nil)
	took := time.Since(start)

	_, typ, msg := errorOf(t, rec.Body.Bytes())
	if rec.Code != 504 || typ != typeUpstream || msg != "Request timed out" {
		t.Fatalf("got %d %s, want 504 upstream_error \"Request timed out\"", rec.Code, rec.Body.String())
	}
	// Without the overall deadline all six accounts would be tried, 2.4 s in all.
	if n := len(fake.Requests()); n < 2 || n > 3 {
		t.Errorf("upstream attempts = %d, want 2 or 3 within the 900 ms deadline", n)
	}
	if took > 2*time.Second {
		t.Errorf("the request took %s, want about 900 ms", took)
	}
	r := stub.waitReport()
	if r.Status != 504 || r.ErrorClass != classRequestTimeout || len(r.Attempts) != len(fake.Requests()) {
		t.Errorf("report = status %d, class %q, %d attempts", r.Status, r.ErrorClass, len(r.Attempts))
	}
	for i, a := range r.Attempts[:len(r.Attempts)-1] {
		if a.ErrorClass != classFirstTokenTimeout {
			t.Errorf("attempt %d class = %q, want %q", i, a.ErrorClass, classFirstTokenTimeout)
		}
	}
}

// After the commit point the overall deadline ends the stream with an in-stream error.
func TestRequestDeadlineAfterCommitIsAnInStreamError(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	fake.SetCredentialScript("slow", fakeupstream.Script{Text: strings.Repeat("word ", 100), ChunkDelayMS: 100})
	fake.SetCredentialScript("spare", fakeupstream.Script{Text: "spliced"})
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: fakeURL, apiKey: "slow"},
		stubAccount{id: 2, baseURL: fakeURL, apiKey: "spare"},
	)
	p := newTestPlugin(t, stub, func(c *Config) { c.RequestTimeout = "1500ms" })

	rec := do(p, "/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, nil)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "response.output_text.delta") {
		t.Fatalf("status %d, body %q: want a committed stream", rec.Code, body)
	}
	if strings.Contains(body, "response.completed") || !strings.Contains(body, "event: response.failed\n") ||
		!strings.Contains(body, `"message":"Request timed out"`) {
		t.Fatalf("want a response.failed \"Request timed out\" and no completion, got %q", body)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("upstream requests = %d, want 1: no failover after the commit point", n)
	}
	r := stub.waitReport()
	if r.Status != 200 || r.ErrorClass != classRequestTimeout || len(r.Attempts) != 1 {
		t.Errorf("report = status %d, class %q, %d attempts", r.Status, r.ErrorClass, len(r.Attempts))
	}
}
