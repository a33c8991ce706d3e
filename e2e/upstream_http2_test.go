package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
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
