package store

import (
	"context"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/testenv"
)

// Every connection is bounded unless the URL says otherwise: a connect timeout and a
// statement timeout (docs/design.md, "Timeouts").
func TestOpenBoundsConnections(t *testing.T) {
	t.Parallel()
	base := testenv.PostgresURL(t)
	tests := []struct {
		name        string
		url         string
		wantStmt    string
		wantConnect time.Duration
	}{
		{name: "defaults", url: base, wantStmt: "1min", wantConnect: DefaultConnectTimeout},
		{name: "the URL's own", url: base + "&connect_timeout=2&options=-c%20statement_timeout%3D5s", wantStmt: "5s",
			wantConnect: 2 * time.Second},
		{name: "statement_timeout as a parameter", url: base + "&statement_timeout=7000", wantStmt: "7s",
			wantConnect: DefaultConnectTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, err := Open(ctx, tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if got := st.Pool.Config().ConnConfig.ConnectTimeout; got != tt.wantConnect {
				t.Errorf("connect timeout %s, want %s", got, tt.wantConnect)
			}
			var stmt string
			if err := st.Pool.QueryRow(ctx, `SHOW statement_timeout`).Scan(&stmt); err != nil {
				t.Fatal(err)
			}
			if stmt != tt.wantStmt {
				t.Errorf("statement_timeout %s, want %s", stmt, tt.wantStmt)
			}
		})
	}
}
