package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
)

// TestLongWaitOnStickyAccount: a request of a sticky session waits 75 s for its account
// (concurrency 1), held by the session's earlier request, and is served when the slot
// frees; afterwards no slot is held and nothing stays reserved.
func TestLongWaitOnStickyAccount(t *testing.T) {
	t.Parallel()
	pending(t, "controlsvc's admit deadlines (no server write timeout below the longest wait)")
	c := newClient(t, calmStack)
	tn := c.NewTenant(gatewaytest.TenantSpec{Name: "longwait", UserConcurrency: 5, BalanceMicros: initialMicros, AccountConcurrency: []int{1}})
	const hold = 75 * time.Second
	c.ProgramUpstream(tn.Credentials[0], obj{"delay_ms": hold.Milliseconds(), "times": 1})
	session := fmt.Sprintf("fault-longwait-%d", time.Now().UnixNano())

	ctx, cancel := context.WithTimeout(context.Background(), hold+60*time.Second)
	defer cancel()
	type result struct {
		status int
		body   string
		took   time.Duration
	}
	send := func(out chan<- result) {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.S.GatewayURL+"/v1/responses",
			strings.NewReader(`{"model":"gpt-4o-mini","input":"a long conversation"}`))
		req.Header.Set("Authorization", "Bearer "+tn.Key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("session_id", session)
		resp, err := c.HTTP.Do(req)
		if err != nil {
			out <- result{body: err.Error(), took: time.Since(start)}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- result{status: resp.StatusCode, body: string(b), took: time.Since(start)}
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go send(first)
	waitActive(t, c, tn.UserID, 1, 10*time.Second) // the first holds the account
	go send(second)

	r1, r2 := <-first, <-second
	t.Logf("holder: %d after %v; waiter: %d after %v", r1.status, r1.took.Round(time.Millisecond), r2.status, r2.took.Round(time.Millisecond))
	if r1.status != http.StatusOK {
		t.Fatalf("the request holding the account: status %d: %.300s", r1.status, r1.body)
	}
	if r2.status != http.StatusOK || r2.took < hold-10*time.Second {
		t.Fatalf("the waiting request: status %d after %v (want 200 after about %v): %.300s", r2.status, r2.took, hold, r2.body)
	}
	c.DrainedUsage(tn.KeyID, 2, 20*time.Second)
	c.WaitNoSlots([]int64{tn.UserID}, tn.AccountIDs, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, reserved := c.Balance(tn.UserID)
		if reserved == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("user %d keeps %d micros reserved", tn.UserID, reserved)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
