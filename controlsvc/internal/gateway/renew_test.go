package gateway

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

func (e *env) renew(t *testing.T, leases ...renewLease) int {
	t.Helper()
	res := e.post(t, "/internal/v1/renew", testSecret, renewRequest{Leases: leases})
	if res.status != http.StatusOK {
		t.Fatalf("renew = %d %s, want 200", res.status, res.body)
	}
	var rep renewReply
	if err := json.Unmarshal(res.body, &rep); err != nil {
		t.Fatalf("renew reply %s: %v", res.body, err)
	}
	return rep.Renewed
}

func TestRenewKeepsLeasesAlive(t *testing.T) {
	t.Parallel()
	const ttl = 600 * time.Millisecond
	e := newEnvTTL(t, ttl)
	f := e.seedFixture(t, 5, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{})
	live := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	idle := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"}) // never renewed
	lease := renewLease{GrantID: live.GrantID, UserID: live.UserID, AccountID: live.AccountID}

	for i := range 5 { // 1.5 s: well past the TTL
		time.Sleep(ttl / 2)
		if n := e.renew(t, lease); n != 1 {
			t.Fatalf("renew %d: renewed %d, want 1", i, n)
		}
	}
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, acc); u != 1 || a != 1 {
		t.Fatalf("slots user=%d account=%d, want only the renewed grant (1, 1)", u, a)
	}
	if n := e.renew(t, renewLease{GrantID: idle.GrantID, UserID: idle.UserID, AccountID: idle.AccountID}); n != 0 {
		t.Fatalf("renewing an expired lease renewed %d, want 0", n)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, acc); u != 0 || a != 0 {
		t.Fatalf("slots user=%d account=%d after the TTL without renewal, want 0, 0", u, a)
	}
	if n := e.renew(t, lease, renewLease{GrantID: "", UserID: 1}, renewLease{GrantID: "g_x"}); n != 0 {
		t.Fatalf("renewed %d expired or malformed leases, want 0", n)
	}
}

func TestRenewBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.post(t, "/internal/v1/renew", testSecret, `{"leases": {}}`)
	if res.status != http.StatusBadRequest {
		t.Fatalf("renew with bad body = %d %s, want 400", res.status, res.body)
	}
	if n := e.renew(t); n != 0 {
		t.Fatalf("empty renew renewed %d", n)
	}
}
