package store

import (
	"context"
	"testing"
	"time"
)

// 0021 converts a populated ledger: every row lands in its month's partition, the old
// requests stay idempotent, and new records are written and read as before.
func TestMigrationUsagePartitionsOnExistingData(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	if err := st.migrate(ctx, migrationsBefore(t, "0021_")); err != nil {
		t.Fatalf("migrating to 0020: %v", err)
	}
	f := seedLedger(t, st, 1_000_000)
	old := time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		id string
		at time.Time
	}{{"req_now", time.Now()}, {"req_old", old}} {
		admExec(t, st, `INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, model, status,
			attempts, cost_micros, created_at) VALUES ($1, $2, $3, $4, 'gpt-4o', 200, 1, 1500, $5)`, r.id, f.user, f.key, f.group, r.at)
		admExec(t, st, `INSERT INTO usage_attempts (request_id, attempt, status, created_at) VALUES ($1, 1, 200, $2)`, r.id, r.at)
	}
	if err := st.RebuildKeyTotals(ctx); err != nil {
		t.Fatal(err)
	}
	lastID := queryInt(t, st, `SELECT max(id) FROM usage_records`)

	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over existing data: %v", err)
	}
	if p := partitionOf(t, st, "usage_records", "req_old"); p != "usage_records_p202503" {
		t.Errorf("old record in %s, want usage_records_p202503", p)
	}
	if p := partitionOf(t, st, "usage_attempts", "req_old"); p != "usage_attempts_p202503" {
		t.Errorf("old attempts in %s, want usage_attempts_p202503", p)
	}
	for _, m := range []string{"202504", monthStart(time.Now()).AddDate(0, UsageMonthsAhead, 0).Format("200601")} {
		if !tableExists(t, st, "usage_records_p"+m) {
			t.Errorf("no partition usage_records_p%s", m)
		}
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_request_ids`); n != 2 {
		t.Errorf("%d request ids, want 2", n)
	}
	rec, err := st.GetUsage(ctx, "req_old")
	if err != nil || !rec.CreatedAt.Equal(old) || rec.CostMicros != 1500 {
		t.Fatalf("old record %+v, %v", rec, err)
	}
	balance := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user)
	ins, _, err := st.WriteUsageBatch(ctx, []UsageWrite{f.failoverWrite("req_old"), f.failoverWrite("req_new")})
	if err != nil || len(ins) != 1 || !ins["req_new"] {
		t.Fatalf("batch after 0021 inserted %v, %v; want req_new only", ins, err)
	}
	if got := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); got != balance-1500 {
		t.Errorf("balance %d, want %d: the replayed old request was charged again", got, balance-1500)
	}
	if id := queryInt(t, st, `SELECT id FROM usage_records WHERE request_id = 'req_new'`); id <= lastID {
		t.Errorf("new record id %d, want after %d (the sequence carried over)", id, lastID)
	}
	page, err := st.ListUsage(ctx, UsageFilter{UserID: f.user, To: old.AddDate(0, 1, 0)}, 0, 10)
	if err != nil || len(page.Records) != 1 || page.Records[0].RequestID != "req_old" {
		t.Errorf("ListUsage up to April 2025 = %+v, %v", page, err)
	}
	if n := queryInt(t, st, `SELECT requests FROM usage_key_totals WHERE api_key_id = $1`, f.key); n != 3 {
		t.Errorf("key totals count %d requests, want 3", n)
	}
}
