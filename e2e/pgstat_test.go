package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgStatFlush is how long to wait before reading PostgreSQL's statistics views: an idle
// backend flushes its counters within 10 s (PostgreSQL's idle stats interval).
const pgStatFlush = 11 * time.Second

// pgStat reads the one number query (over the statistics views) answers, after wait.
func pgStat(ctx context.Context, t *testing.T, conn *pgx.Conn, wait time.Duration, query string) int64 {
	t.Helper()
	time.Sleep(wait)
	var n int64
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
