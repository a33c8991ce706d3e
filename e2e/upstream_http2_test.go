package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Providers serve HTTPS with HTTP/2: the plugin's transport negotiates it by ALPN, so the
// streams of an account share a few connections instead of holding one each (docs/design.md,
// "Memory per open stream"). The fake's TLS listener stands in for such a provider.
func TestUpstreamOverHTTP2(t *testing.T) {
	if gw.FakeTLSURL == "" {
		t.Fatal("the e2e stack has no TLS listener on the fake upstream")
	}
	cred := unique("sk-h2")
	tn, _ := newTenant(t)
	addAccount(t, tn, gw.FakeTLSURL, cred, 0)
	programCredential(t, cred, obj{"text": fiveWords})

	const n = 4 // concurrent, so that they share the connection while open
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for i := 0; i < n; i++ {
		body := responsesStreamBody
		if i%2 == 1 {
			body = `{"model":"gpt-4o-mini","input":"hi"}`
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, gw.GatewayURL+"/v1/responses", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tn.Key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), "epsilon") {
				errs <- resp.Status + ": " + string(got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	reqs := upstreamRequestsFor(t, cred)
	if len(reqs) != n {
		t.Fatalf("the fake got %d requests with the account's credential, want %d", len(reqs), n)
	}
	for _, r := range reqs {
		if r.Proto != "HTTP/2.0" {
			t.Errorf("upstream request %s came as %q, want HTTP/2.0", r.Path, r.Proto)
		}
	}
}

// Over HTTP/2 an account's streams share one connection, so a fault of one stream must stay
// on that stream: an upstream that resets its stream (RST_STREAM) after the first event, and
// one that sends its headers and then nothing, both fail over before the commit point,
// while a slow stream open on the same connection the whole time ends intact.
func TestHTTP2StreamFaultsStayOnTheirStream(t *testing.T) {
	if gw.FakeTLSURL == "" {
		t.Fatal("the e2e stack has no TLS listener on the fake upstream")
	}
	slowCred, resetCred, silentCred, spareCred := unique("sk-h2slow"), unique("sk-h2reset"), unique("sk-h2silent"), unique("sk-h2spare")
	programCredential(t, slowCred, obj{"text": fiveWords, "chunk_delay_ms": 400})
	programCredential(t, resetCred, obj{"cut_after_events": 1})
	programCredential(t, silentCred, obj{"stall_after_events": 0})
	programCredential(t, spareCred, obj{"text": "from the spare account"})

	bystander, _ := newTenant(t)
	slowAcct := addAccount(t, bystander, gw.FakeTLSURL, slowCred, 0)
	tn, _ := newTenant(t)
	faulty := []int64{addAccount(t, tn, gw.FakeTLSURL, resetCred, 1), addAccount(t, tn, gw.FakeTLSURL, silentCred, 1)}
	spare := addAccount(t, tn, gw.FakeTLSURL, spareCred, 2)
	mustAdmin(t, "PATCH", fmt.Sprintf("/groups/%d", tn.GroupID), obj{"first_token_timeout_ms": 1000})
	time.Sleep(2500 * time.Millisecond) // the key cache (2 s) picks the group change up

	slowDone := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, gw.GatewayURL+"/v1/responses", strings.NewReader(responsesStreamBody))
		req.Header.Set("Authorization", "Bearer "+bystander.Key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slowDone <- err.Error()
			return
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), "epsilon") ||
			!strings.Contains(string(got), "event: response.completed") || strings.Contains(string(got), "event: error") {
			slowDone <- resp.Status + ": " + string(got)
			return
		}
		slowDone <- ""
	}()
	time.Sleep(300 * time.Millisecond) // the slow stream is open on the shared connection

	// Each request goes to one faulty account first (both have priority 1) and ends on the
	// spare; four of them meet both faults.
	for i := 0; i < 4; i++ {
		code, _, body := post(t, "/v1/responses", tn.Key, fmt.Sprintf(`{"model":"gpt-4o-mini","input":%q,"stream":true}`, unique("h2")), nil)
		if code != 200 || !strings.Contains(body, "from the spare account") || !strings.Contains(body, "event: response.completed") ||
			strings.Count(body, "event: response.created") != 1 {
			t.Fatalf("request %d: %d %s, want the spare account's stream alone", i, code, body)
		}
	}
	classes := map[string]bool{}
	for _, rec := range usageFor(t, tn.KeyID, 4) {
		if num(rec, "account_id") != spare || num(rec, "status") != 200 {
			t.Fatalf("usage record %v, want a 200 from the spare account", rec)
		}
		requestID, _ := rec["request_id"].(string)
		for _, a := range mustAdmin(t, "GET", "/usage/"+requestID, nil)["attempts"].([]any) {
			if at := a.(obj); num(at, "account_id") != spare {
				classes[fmt.Sprint(at["error_class"])] = true
			}
		}
	}
	if !classes["first_token_timeout"] || !(classes["stream_cut"] || classes["transport"]) {
		t.Errorf("the faulty attempts ended as %v, want a first_token_timeout and a reset (stream_cut or transport)", classes)
	}
	slowConn := upstreamRequestsFor(t, slowCred)[0].Remote
	shared := 0
	for _, r := range append(upstreamRequestsFor(t, resetCred), upstreamRequestsFor(t, silentCred)...) {
		if r.Proto != "HTTP/2.0" {
			t.Errorf("upstream request %s came as %q, want HTTP/2.0", r.Path, r.Proto)
		}
		if r.Remote == slowConn {
			shared++
		}
	}
	if shared == 0 {
		t.Errorf("no faulty stream shared the slow stream's connection %s: the test proves nothing", slowConn)
	}
	select {
	case msg := <-slowDone:
		if msg != "" {
			t.Fatalf("the slow stream on the shared connection: %s", msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the slow stream on the shared connection never ended")
	}
	assertNoSlotsHeld(t, []int64{tn.UserID, bystander.UserID}, append(faulty, spare, slowAcct))
}
