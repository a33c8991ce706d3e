package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tripCounter counts what a pool sends PostgreSQL per round trip: a batch, or a statement
// sent on its own (BEGIN and COMMIT of a pgx.Tx are); it also keeps every statement's SQL.
type tripCounter struct {
	trips atomic.Int32
	mu    sync.Mutex
	sqls  []string
}

func (c *tripCounter) saw(sql string) {
	c.mu.Lock()
	c.sqls = append(c.sqls, sql)
	c.mu.Unlock()
}

// reset forgets what was counted.
func (c *tripCounter) reset() {
	c.trips.Store(0)
	c.mu.Lock()
	c.sqls = nil
	c.mu.Unlock()
}

// statements counts the statements sent that begin with prefix.
func (c *tripCounter) statements(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.sqls {
		if strings.HasPrefix(strings.TrimSpace(s), prefix) {
			n++
		}
	}
	return n
}

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if ctx.Value(inBatch{}) == nil {
		c.trips.Add(1)
		c.saw(d.SQL)
	}
	return ctx
}
func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.trips.Add(1)
	return context.WithValue(ctx, inBatch{}, true)
}
func (c *tripCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.saw(d.SQL)
}
func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

type inBatch struct{}

// countedStore is a store on st's database whose round trips c counts.
func countedStore(t *testing.T, st *Store) (*Store, *tripCounter) {
	t.Helper()
	cfg := st.Pool.Config().Copy()
	c := &tripCounter{}
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &Store{Pool: pool}, c
}

// TestUsageBatchRoundTrips: a batch of one record costs three PostgreSQL round trips (the
// BEGIN goes with the insert, the COMMIT with the charges), and the record is stored and
// charged.
func TestUsageBatchRoundTrips(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 1_000_000)
	counted, c := countedStore(t, st)
	if _, err := counted.WriteUsage(ctx, f.failoverWrite("req_warm")); err != nil {
		t.Fatal(err)
	}
	c.reset()
	inserted, err := counted.WriteUsage(ctx, f.failoverWrite("req_counted"))
	if err != nil || !inserted {
		t.Fatalf("WriteUsage = %v, %v", inserted, err)
	}
	if n := c.trips.Load(); n != 3 {
		t.Errorf("a batch of one record took %d round trips, want 3", n)
	}
	if got := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); got != 1_000_000-2*1500 {
		t.Errorf("balance = %d, want %d: both records charged once", got, 1_000_000-2*1500)
	}
}

// TestUsageBatchSettlesInSets: a batch of many records of several users costs the same
// three round trips as one record, with one update per affected balance, subscription and
// key quota, and charges each the sum of its records: a subscription charged by several
// records of the batch gets all of them.
func TestUsageBatchSettlesInSets(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	bal, bal2, subs := seedLedger(t, st, 1_000_000), seedLedger(t, st, 1_000_000), seedLedger(t, st, 1_000_000)
	admExec(t, st, `UPDATE api_keys SET quota_micros = 1000000 WHERE id = $1`, bal.key)
	admExec(t, st, `UPDATE groups SET billing_mode = 'subscription', daily_limit_micros = 9000000 WHERE id = $1`, subs.group)
	sub := admSQL(t, st, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at)
		VALUES ($1, $2, now() - interval '1 day', now() + interval '29 days') RETURNING id`, subs.user, subs.group)
	batch := func(tag string) []UsageWrite {
		var out []UsageWrite
		for i := 0; i < 4; i++ { // interleaved: the batch sorts them
			out = append(out, bal.failoverWrite(fmt.Sprintf("req_%s_bal_%d", tag, i)))
			if i < 3 {
				w := subs.failoverWrite(fmt.Sprintf("req_%s_sub_%d", tag, i))
				w.Held = &HeldRef{UserID: subs.user, KeyID: subs.key, GroupID: subs.group, BillingMode: BillingSubscription,
					SubscriptionID: sub, AmountMicros: 5000}
				out = append(out, w)
			}
			if i < 2 {
				out = append(out, bal2.failoverWrite(fmt.Sprintf("req_%s_bal2_%d", tag, i)))
			}
		}
		return out
	}
	counted, c := countedStore(t, st)
	if _, _, err := counted.WriteUsageBatch(ctx, batch("warm")); err != nil { // prepares the statements
		t.Fatal(err)
	}
	c.reset()
	ins, _, err := counted.WriteUsageBatch(ctx, batch("counted"))
	if err != nil || len(ins) != 9 {
		t.Fatalf("WriteUsageBatch = %d inserted, %v; want 9", len(ins), err)
	}
	if n := c.trips.Load(); n != 3 {
		t.Errorf("a batch of 9 records took %d round trips, want 3", n)
	}
	for _, tt := range []struct {
		prefix string
		want   int
	}{{"UPDATE users", 2}, {"UPDATE subscriptions", 1}, {"UPDATE api_keys", 1}} {
		if n := c.statements(tt.prefix); n != tt.want {
			t.Errorf("%d statements %q…, want %d: one per affected row", n, tt.prefix, tt.want)
		}
	}
	// Both batches charged, 1500 per record.
	if got := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, bal.user); got != 1_000_000-8*1500 {
		t.Errorf("balance = %d, want %d", got, 1_000_000-8*1500)
	}
	if got := queryInt(t, st, `SELECT quota_used_micros FROM api_keys WHERE id = $1`, bal.key); got != 8*1500 {
		t.Errorf("key quota used = %d, want %d", got, 8*1500)
	}
	if got := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, bal2.user); got != 1_000_000-4*1500 {
		t.Errorf("second balance = %d, want %d", got, 1_000_000-4*1500)
	}
	if got := queryInt(t, st, `SELECT quota_used_micros FROM api_keys WHERE id = $1`, bal2.key); got != 0 {
		t.Errorf("a key without a quota counted %d", got)
	}
	for _, col := range []string{"daily_used_micros", "weekly_used_micros", "monthly_used_micros"} {
		if got := queryInt(t, st, `SELECT `+col+` FROM subscriptions WHERE id = $1`, sub); got != 6*1500 {
			t.Errorf("subscription %s = %d, want %d", col, got, 6*1500)
		}
	}
	if got := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, subs.user); got != 1_000_000 {
		t.Errorf("the subscription user's balance = %d, want untouched", got)
	}
}

// TestUsageBatchRollsBackOnError: a batch whose insert fails after its BEGIN leaves
// nothing behind, and the pool's connections stay usable (none is handed back inside a
// transaction).
func TestUsageBatchRollsBackOnError(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 1_000_000)
	bad := f.failoverWrite("req_bad")
	bad.Path = "/v1/\x00responses" // PostgreSQL refuses a NUL in text: the insert fails
	good := f.failoverWrite("req_good")
	if _, _, err := st.WriteUsageBatch(ctx, []UsageWrite{good, bad}); err == nil {
		t.Fatal("a batch with a NUL in a text column was stored")
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_records WHERE user_id = $1`, f.user); n != 0 {
		t.Fatalf("%d records after a failed batch, want 0", n)
	}
	for i := 0; i < 2*int(st.Pool.Config().MaxConns); i++ { // every connection of the pool once at least
		// Inside a transaction left open the query fails (aborted) or sees its transaction
		// id (it wrote); a connection that is idle has none.
		var open bool
		if err := st.Pool.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned() IS NOT NULL`).Scan(&open); err != nil || open {
			t.Fatalf("connection %d: in a transaction %v, %v; want idle", i, open, err)
		}
	}
	if _, err := st.WriteUsage(ctx, good); err != nil {
		t.Fatalf("the batch after a failed one: %v", err)
	}
	if got := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); got != 1_000_000-1500 {
		t.Errorf("balance = %d, want %d", got, 1_000_000-1500)
	}
}
