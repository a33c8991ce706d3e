package store

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tripCounter counts what a pool sends PostgreSQL per round trip: a batch, or a statement
// sent on its own (BEGIN and COMMIT of a pgx.Tx are).
type tripCounter struct{ trips atomic.Int32 }

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if ctx.Value(inBatch{}) == nil {
		c.trips.Add(1)
	}
	return ctx
}
func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.trips.Add(1)
	return context.WithValue(ctx, inBatch{}, true)
}
func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

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
	c.trips.Store(0)
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
