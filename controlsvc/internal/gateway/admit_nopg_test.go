package gateway

import (
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// Admission of a cached key whose wallets are loaded touches Redis only: zero PostgreSQL
// statements (docs/design.md, "The hot path: one request, hop by hop"), for first admissions and their holds, balance and
// subscription mode alike. Only the first admission loads the key and the wallets.
func TestCachedKeyAdmissionIssuesNoPostgreSQL(t *testing.T) {
	t.Parallel()
	e, counter := newCountedEnv(t)
	tests := []struct {
		name         string
		subscription bool
	}{
		{name: "balance"},
		{name: "subscription", subscription: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedBillFixture(t, "openai", 1<<40)
			if tt.subscription {
				e.exec(t, `UPDATE groups SET billing_mode = 'subscription', daily_limit_micros = $2 WHERE id = $1`, f.group, int64(1)<<40)
				e.exec(t, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at) VALUES ($1, $2, now() - interval '1 hour', now() + interval '30 days')`,
					f.user, f.group)
			}
			e.exec(t, `UPDATE api_keys SET quota_micros = $2 WHERE user_id = $1`, f.user, int64(1)<<40)
			e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 1000}) // warms key and wallets
			before := counter.Hot.Load()
			const n = 20
			for range n {
				g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 1000, MaxOutputTokens: 100})
				if h, ok := e.hold(t, f.user, g.RequestID); !ok || h.AmountMicros == 0 {
					t.Fatalf("grant %s holds %+v (%v), want its estimate", g.RequestID, h, ok)
				}
				if err := e.slots.ReleaseMany(t.Context(), []slots.Lease{{Kind: slots.KindUser, ID: f.user, GrantID: g.GrantID},
					{Kind: slots.KindAccount, ID: f.account, GrantID: g.GrantID}}); err != nil {
					t.Fatal(err)
				}
			}
			if got := counter.Hot.Load() - before; got != 0 {
				t.Fatalf("%d admissions of a cached key sent %d PostgreSQL statements, want 0", n, got)
			}
			if h := e.heldOf(t, f.user); h.Holds != n+1 {
				t.Fatalf("%d holds, want %d", h.Holds, n+1)
			}
		})
	}
}
