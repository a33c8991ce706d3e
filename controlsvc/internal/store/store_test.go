package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolgate/poolgate/internal/testenv"
)

// Every connection is bounded unless the URL says otherwise: a connect timeout, a
// statement timeout and an idle-in-transaction timeout (docs/design.md, "Timeouts").
func TestOpenBoundsConnections(t *testing.T) {
	t.Parallel()
	base := testenv.PostgresURL(t)
	tests := []struct {
		name        string
		url         string
		bounds      Bounds
		wantStmt    string
		wantIdle    string
		wantConnect time.Duration
	}{
		{name: "defaults", url: base, wantStmt: "30s", wantIdle: "10s", wantConnect: DefaultConnectTimeout},
		{name: "configured", url: base, bounds: Bounds{Statement: 45 * time.Second, IdleInTransaction: 2 * time.Second},
			wantStmt: "45s", wantIdle: "2s", wantConnect: DefaultConnectTimeout},
		{name: "the URL's own", url: base + "&connect_timeout=2&options=-c%20statement_timeout%3D5s%20-c%20idle_in_transaction_session_timeout%3D3s",
			bounds: Bounds{Statement: time.Minute, IdleInTransaction: time.Minute}, wantStmt: "5s", wantIdle: "3s",
			wantConnect: 2 * time.Second},
		{name: "as parameters", url: base + "&statement_timeout=7000&idle_in_transaction_session_timeout=4000",
			bounds: Bounds{Statement: time.Minute}, wantStmt: "7s", wantIdle: "4s", wantConnect: DefaultConnectTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, err := OpenWith(ctx, tt.url, tt.bounds)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if got := st.Pool.Config().ConnConfig.ConnectTimeout; got != tt.wantConnect {
				t.Errorf("connect timeout %s, want %s", got, tt.wantConnect)
			}
			var stmt, idle string
			if err := st.Pool.QueryRow(ctx, `SELECT current_setting('statement_timeout'),
				current_setting('idle_in_transaction_session_timeout')`).Scan(&stmt, &idle); err != nil {
				t.Fatal(err)
			}
			if stmt != tt.wantStmt || idle != tt.wantIdle {
				t.Errorf("statement_timeout %s, idle_in_transaction_session_timeout %s; want %s, %s", stmt, idle, tt.wantStmt, tt.wantIdle)
			}
		})
	}
}

// The bounds hold on the pool's connections: a statement running past statement_timeout is
// cancelled (SQLSTATE 57014), and a transaction left idle past
// idle_in_transaction_session_timeout loses its session (SQLSTATE 25P03), releasing its locks.
func TestBoundsCancelRunawayWork(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := OpenWith(ctx, testenv.PostgresURL(t), Bounds{Statement: 200 * time.Millisecond, IdleInTransaction: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	_, err = st.Pool.Exec(ctx, `SELECT pg_sleep(5)`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("a 5 s statement under a 200 ms statement_timeout: %v, want SQLSTATE 57014", err)
	}

	tx, err := st.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // idle inside the transaction, past its bound
	_, err = tx.Exec(ctx, `SELECT 1`)
	if !errors.As(err, &pgErr) || pgErr.Code != "25P03" {
		t.Fatalf("a statement after 1 s idle in a transaction: %v, want SQLSTATE 25P03", err)
	}
}
