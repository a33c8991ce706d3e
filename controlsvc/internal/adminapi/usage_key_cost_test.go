package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// statementLog records the statements run on a pool (a pgx tracer).
type statementLog struct {
	mu    sync.Mutex
	stmts []tracedStatement
}

type tracedStatement struct {
	sql  string
	args []any
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	l.stmts = append(l.stmts, tracedStatement{sql: d.SQL, args: d.Args})
	l.mu.Unlock()
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements logged since the last take.
func (l *statementLog) take() []tracedStatement {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.stmts
	l.stmts = nil
	return out
}

// newTracedEnv is an env whose API runs its statements on a pool that logs them; e.st
// (the test's own SQL) is not logged.
func newTracedEnv(t *testing.T) (*env, *statementLog) {
	t.Helper()
	log := &statementLog{}
	e := newEnvWith(t, func(o *Options, _ *redis.Client) {
		cfg := o.Store.Pool.Config().Copy()
		cfg.ConnConfig.Tracer = log
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		o.Store = &store.Store{Pool: pool}
	})
	return e, log
}

// planCost is what EXPLAIN ANALYZE says a statement read: the rows its scans returned per
// table and the buffers it used.
type planCost struct {
	tables  map[string]float64
	buffers float64
}

func explain(t *testing.T, e *env, s tracedStatement) planCost {
	t.Helper()
	var raw []byte
	if err := e.st.Pool.QueryRow(t.Context(), "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+s.sql, s.args...).Scan(&raw); err != nil {
		t.Fatalf("EXPLAIN %s: %v", s.sql, err)
	}
	var plans []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", raw, err)
	}
	c := planCost{tables: map[string]float64{}}
	top := plans[0].Plan
	c.buffers = top["Shared Hit Blocks"].(float64) + top["Shared Read Blocks"].(float64)
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if rel, ok := n["Relation Name"].(string); ok {
			c.tables[rel] += n["Actual Rows"].(float64) * n["Actual Loops"].(float64)
		}
		subs, _ := n["Plans"].([]any)
		for _, p := range subs {
			walk(p.(map[string]any))
		}
	}
	walk(top)
	return c
}

// GET /v1/usage costs the same with 10 and with 100 000 records: one statement, which reads
// no usage record, the same rows and the same buffers; a second call within the cache's
// second, and a repeated unknown key, cost no statement at all.
func TestKeyUsageCostDoesNotGrowWithRecords(t *testing.T) {
	t.Parallel()
	e, stmts := newTracedEnv(t)
	user, group := e.createUser("cost"), e.createGroup("cost", "openai")
	small, smallKey := e.createKey(user, group)
	big, bigKey := e.createKey(user, group)
	for _, k := range []struct {
		id int64
		n  int
	}{{small, 10}, {big, 100_000}} {
		if _, err := e.st.Pool.Exec(t.Context(), `
INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, model, status, attempts,
    input_tokens, output_tokens, cost_micros, input_cost_micros, output_cost_micros)
SELECT 'req-' || $1::bigint || '-' || i, $2, $1, $3, 'gpt-4o', 200, 1, 10, 5, 3, 1, 2
FROM generate_series(1, $4::int) AS i`, k.id, user, group, k.n); err != nil {
			t.Fatal(err)
		}
	}
	// Written outside settlement: count them into the totals, as migration 0011 does.
	if err := e.st.RebuildKeyTotals(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Pool.Exec(t.Context(), `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	stmts.take()

	costs := map[string]planCost{}
	for _, k := range []struct {
		name, key string
		requests  int
	}{{"10 records", smallKey, 10}, {"100000 records", bigKey, 100_000}} {
		status, raw := e.keyCall(map[string]string{"Authorization": "Bearer " + k.key})
		var got keyUsageView
		if err := json.Unmarshal(raw, &got); err != nil || status != http.StatusOK ||
			got.Usage.Total.Requests != int64(k.requests) || got.Usage.Today.Requests != int64(k.requests) {
			t.Fatalf("%s: GET /v1/usage = %d %s", k.name, status, raw)
		}
		run := stmts.take()
		if len(run) != 1 {
			t.Fatalf("%s: %d statements, want 1: %v", k.name, len(run), run)
		}
		c := explain(t, e, run[0])
		_, records := c.tables["usage_records"]
		_, attempts := c.tables["usage_attempts"]
		if records || attempts || c.tables["usage_key_days"] > 2 || c.tables["usage_key_totals"] > 2 {
			// At most the two keys' rows (a small table is read sequentially).
			t.Errorf("%s: the statement reads %v", k.name, c.tables)
		}
		costs[k.name] = c

		// Within the second: from memory.
		if status, _ := e.keyCall(map[string]string{"X-Api-Key": k.key}); status != http.StatusOK {
			t.Fatalf("%s: second call = %d", k.name, status)
		}
		if run := stmts.take(); len(run) != 0 {
			t.Errorf("%s: a second call within a second ran %d statements", k.name, len(run))
		}
	}
	// The rows of the key's own tables may differ with the plan's join order (a sequential
	// scan of users returns every user); the totals rows and the buffers may not.
	if a, b := costs["10 records"], costs["100000 records"]; a.buffers != b.buffers {
		t.Errorf("cost with 10 records %+v, with 100000 %+v: want the same", a, b)
	}

	// An unknown key costs one statement, then none.
	for i, want := range []int{1, 0, 0} {
		if status, _ := e.keyCall(map[string]string{"Authorization": "Bearer sk-pg-unknown"}); status != http.StatusUnauthorized {
			t.Fatalf("unknown key: %d", status)
		}
		if run := stmts.take(); len(run) != want {
			t.Errorf("unknown key, call %d: %d statements, want %d", i+1, len(run), want)
		}
	}
	// A key refused while disabled is known again as soon as it is enabled.
	e.mustCall(http.MethodPatch, "/api/v1/admin/api-keys/"+itoa(small), map[string]any{"status": "disabled"}, http.StatusOK, nil)
	e.expireKeyUsages()
	for range 2 {
		if status, _ := e.keyCall(map[string]string{"Authorization": "Bearer " + smallKey}); status != http.StatusUnauthorized {
			t.Fatalf("disabled key: %d", status)
		}
	}
	e.mustCall(http.MethodPatch, "/api/v1/admin/api-keys/"+itoa(small), map[string]any{"status": "active"}, http.StatusOK, nil)
	if status, raw := e.keyCall(map[string]string{"Authorization": "Bearer " + smallKey}); status != http.StatusOK {
		t.Errorf("enabled again: %d %s", status, raw)
	}
}
