package e2e

// A hostile tenant through the real Traefik (docs/security.md): a made-up key costs no
// memory and no body read, and a 401 a client can cause never pauses an account.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// traefikRSS is Traefik's resident set in bytes (VmRSS of /proc/<pid>/status).
func traefikRSS(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", gw.TraefikPID()))
	if err != nil {
		t.Fatalf("reading Traefik's status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in Traefik's status")
	return 0
}

// announceHugeBody sends the headers of a request that announces a 256 MB body with the
// given key and never sends a byte of it, and returns the status line's code and how long
// the answer took.
func announceHugeBody(path, authHeader string) (int, time.Duration, error) {
	u, err := url.Parse(gw.GatewayURL)
	if err != nil {
		return 0, 0, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	began := time.Now()
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Type: application/json\r\nContent-Length: 268435455\r\n\r\n",
		path, authHeader)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, time.Since(began), err
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(began), nil
}

// TestMalformedKeyRefusedBeforeBody: 20 clients at once announce 256 MB bodies with
// malformed keys and send nothing; each is answered 401 at once (the plugin does not wait
// for the body) and Traefik's memory does not grow by anything like the announced sizes.
func TestMalformedKeyRefusedBeforeBody(t *testing.T) {
	const clients = 20
	headers := []string{
		"Authorization: Bearer sk-pg-not-a-key",
		"Authorization: Bearer sk-proj-0123456789abcdef",
		"X-Api-Key: sk-ant-api03-made-up",
		"Authorization: Bearer sk-pg-0123456789ABCDEF0123456789abcdef0123456789abcdef",
	}
	paths := []string{"/v1/responses", "/v1/chat/completions", "/v1/messages"}
	if code, _, err := announceHugeBody(paths[0], headers[0]); err != nil || code != 401 {
		t.Fatalf("warm-up: %d %v, want 401", code, err)
	}
	before := traefikRSS(t)
	type result struct {
		code int
		took time.Duration
		err  error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, took, err := announceHugeBody(paths[i%len(paths)], headers[i%len(headers)])
			results[i] = result{code, took, err}
		}(i)
	}
	wg.Wait()
	after := traefikRSS(t)
	for i, r := range results {
		// Well under a second: a plugin that read the body would wait for Traefik's
		// readTimeout (60s) and the client's 10s deadline first.
		if r.err != nil || r.code != 401 || r.took > time.Second {
			t.Errorf("client %d: %d after %v (%v), want 401 well under a second", i, r.code, r.took, r.err)
		}
	}
	const bound = 64 << 20 // against 20 × 256 MB announced
	if grew := after - before; grew > bound {
		t.Errorf("Traefik's RSS grew by %d MB (%d → %d MB), want < 64 MB", grew>>20, before>>20, after>>20)
	}
}

// TestClientCausedAuthErrorLeavesAccountsActive: an upstream 401 that does not blame the
// credential (here the organization mismatch a client's OpenAI-Organization header causes)
// reaches the client with the upstream's status, is not failed over, and leaves every
// account of the group active.
func TestClientCausedAuthErrorLeavesAccountsActive(t *testing.T) {
	a, b := unique("sk-org"), unique("sk-org")
	upstreamBody := `{"error":{"message":"OpenAI-Organization header should match organization for API key","type":"invalid_request_error","param":null,"code":"mismatched_organization"}}`
	for _, c := range []string{a, b} {
		programCredential(t, c, obj{"status": 401, "body": upstreamBody})
	}
	tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})
	for i := 0; i < 3; i++ {
		code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, map[string]string{"OpenAI-Organization": "org-bogus"})
		if code != 401 || !jsonEqual(body, upstreamBody) {
			t.Fatalf("request %d: got %d %s, want the upstream's 401 %s", i, code, body, upstreamBody)
		}
	}
	if n, m := len(upstreamRequestsFor(t, a)), len(upstreamRequestsFor(t, b)); n != 3 || m != 0 {
		t.Errorf("upstream attempts: first account %d, second %d; want 3 and 0 (no failover, no pause)", n, m)
	}
	for _, acc := range accts {
		wantNull(t, accountHealth(t, acc), healthDeadlines...)
	}
	recs := usageFor(t, tn.KeyID, 3)
	for _, r := range recs {
		if num(r, "status") != 401 || num(r, "attempts") != 1 {
			t.Errorf("usage record = %v, want status 401 after 1 attempt", r)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
