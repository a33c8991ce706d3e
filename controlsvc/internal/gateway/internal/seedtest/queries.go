package seedtest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// QueryCounter counts the statements a pool sends to PostgreSQL, all of them and those that
// read api_keys (the key lookups).
type QueryCounter struct {
	All, Keys, Authenticate atomic.Int64
	// Hot: the statements other than the background ones off admission's path: the
	// last-used batcher's (admission's touch.go) and the ledger partition keeper's
	// (ledger.PartitionKeeper, at start and daily).
	Hot atomic.Int64
}

// TraceQueryStart counts one statement.
func (c *QueryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.All.Add(1)
	if !strings.Contains(d.SQL, "last_used_at") && !strings.Contains(d.SQL, "poolgate_ensure_usage_month") {
		c.Hot.Add(1)
	}
	if strings.Contains(d.SQL, "api_keys") {
		c.Keys.Add(1)
	}
	if strings.Contains(d.SQL, "k.key_hash = $1") { // store.AuthenticateKey
		c.Authenticate.Add(1)
	}
	return ctx
}

// TraceQueryEnd does nothing: statements are counted as they start.
func (c *QueryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Counted is a store on st's database whose statements c counts; st itself is not counted.
func Counted(t testing.TB, st *store.Store) (*store.Store, *QueryCounter) {
	t.Helper()
	cfg := st.Pool.Config().Copy()
	c := &QueryCounter{}
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &store.Store{Pool: pool}, c
}
