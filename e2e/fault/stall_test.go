package fault

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
)

// TestClientsThatNeverRead: 50 clients open streams with a 4 KiB receive buffer and never
// read; the answers are 8 MiB, so the plugin's writes block. Their slots are back to 0
// within writeStallTimeout + one lease TTL, and another user is served meanwhile.
func TestClientsThatNeverRead(t *testing.T) {
	t.Parallel()
	pending(t, "the plugin's writeStallTimeout")
	c := newClient(t, calmStack)
	stuck := c.NewTenant(gatewaytest.TenantSpec{Name: "stuck", UserConcurrency: 60, BalanceMicros: initialMicros, AccountConcurrency: []int{60}})
	other := c.NewTenant(gatewaytest.TenantSpec{Name: "unstuck", UserConcurrency: 5, BalanceMicros: initialMicros, AccountConcurrency: []int{5}})
	// 1024 deltas of 8 KiB: far more than the socket buffers between Traefik and the client.
	c.ProgramUpstream(stuck.Credentials[0], obj{"text": strings.TrimSpace(strings.Repeat(strings.Repeat("x", 8191)+" ", 1024)),
		"usage": obj{"input_tokens": 1000, "output_tokens": 500}})
	c.ProgramUpstream(other.Credentials[0], streamScript())

	const clients = 50
	u, _ := url.Parse(c.S.GatewayURL)
	dialer := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var conns []net.Conn
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for i := 0; i < clients; i++ {
		conn, err := dialer.Dial("tcp", u.Host)
		if err != nil {
			t.Fatalf("dialing the gateway: %v", err)
		}
		conns = append(conns, conn)
		body := streamBody()
		req := fmt.Sprintf("POST /v1/responses HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", u.Host, stuck.Key, len(body), body)
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatalf("sending a request: %v", err)
		}
	}
	// Wait until all 50 hold their slots, then check they still do a second later, well
	// within the stall bound of the first admitted: their writes block rather than finish.
	sent := time.Now()
	admitted := waitActive(t, c, stuck.UserID, clients, 20*time.Second)
	t.Logf("all %d stuck streams admitted %v after the last request was sent", clients, admitted.Sub(sent).Round(time.Millisecond))
	time.Sleep(time.Second)
	if n := activeOf(t, c, stuck.UserID); n != clients {
		t.Fatalf("%d of %d stuck streams hold slots a second after admission: the writes did not block", n, clients)
	}

	// Another user is served while the stuck streams hold their slots.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		a := streamRequest(ctx, c, other.Key, nil)
		if !a.complete || a.end.Sub(a.sent) > 5*time.Second {
			t.Fatalf("another user's stream during the stall: status %d, complete %v, %v, err %q",
				a.status, a.complete, a.end.Sub(a.sent), a.err)
		}
	}

	bound := writeStallTimeout + calmLeaseTTL + 5*time.Second - time.Since(admitted)
	c.WaitNoSlots([]int64{stuck.UserID, other.UserID}, append(stuck.AccountIDs, other.AccountIDs...), bound)
	t.Logf("stuck streams' slots back to 0 %v after they were admitted", time.Since(admitted).Round(time.Millisecond))
}

// activeOf is the user's active slots from /concurrency.
func activeOf(t *testing.T, c *gatewaytest.Client, userID int64) int {
	t.Helper()
	out := c.MustAdmin("GET", "/concurrency", nil)
	items, _ := out["users"].([]any)
	for _, it := range items {
		o, _ := it.(obj)
		if gatewaytest.Integer(t, o["user_id"]) == userID {
			return int(gatewaytest.Integer(t, o["active"]))
		}
	}
	return 0
}

// waitActive waits until the user holds n slots and returns when that was.
func waitActive(t *testing.T, c *gatewaytest.Client, userID int64, n int, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := activeOf(t, c, userID)
		if got == n {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("user %d holds %d slots after %v, want %d", userID, got, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
