package store

import (
	"context"
	"testing"
	"time"
)

// backdate moves a stored request (record, attempts, request id) to at, as if it had been
// written then: rows move to at's month partition.
func backdate(t *testing.T, st *Store, requestID string, at time.Time) {
	t.Helper()
	for _, table := range []string{"usage_records", "usage_attempts", "usage_request_ids"} {
		admExec(t, st, `UPDATE `+table+` SET created_at = $2 WHERE request_id = $1`, requestID, at)
	}
}

func partitionOf(t *testing.T, st *Store, table, requestID string) string {
	t.Helper()
	var name string
	if err := st.Pool.QueryRow(context.Background(),
		`SELECT tableoid::regclass::text FROM `+table+` WHERE request_id = $1 LIMIT 1`, requestID).Scan(&name); err != nil {
		t.Fatalf("partition of %s in %s: %v", requestID, table, err)
	}
	return name
}

// A report is charged once however it comes again: twice in a batch, in a later batch, or
// in a batch of the next month while its record is stored in the month before.
func TestWriteUsageIdempotentAcrossPartitions(t *testing.T) {
	t.Parallel()
	lastMonth := monthStart(time.Now()).AddDate(0, -1, 10)
	cases := []struct {
		name  string
		first []string // request ids of the first batch
		month bool     // move the first batch's records to last month before the replay
	}{
		{name: "twice in one batch", first: []string{"req_a", "req_a"}},
		{name: "again in a later batch", first: []string{"req_a"}},
		{name: "again across a month boundary", first: []string{"req_a"}, month: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			ctx := context.Background()
			if _, err := st.EnsureUsagePartitions(ctx, lastMonth); err != nil {
				t.Fatal(err)
			}
			f := seedLedger(t, st, 1_000_000)
			var batch []UsageWrite
			for _, id := range tc.first {
				batch = append(batch, f.failoverWrite(id))
			}
			ins, _, err := st.WriteUsageBatch(ctx, batch)
			if err != nil || len(ins) != 1 || !ins["req_a"] {
				t.Fatalf("first batch inserted %v, %v; want req_a only", ins, err)
			}
			if tc.month {
				backdate(t, st, "req_a", lastMonth)
				if p := partitionOf(t, st, "usage_records", "req_a"); p != "usage_records_p"+lastMonth.Format("200601") {
					t.Fatalf("record in %s, want last month's partition", p)
				}
			}
			// The replay comes with a new request, in this month.
			ins, _, err = st.WriteUsageBatch(ctx, []UsageWrite{f.failoverWrite("req_a"), f.failoverWrite("req_b")})
			if err != nil || len(ins) != 1 || !ins["req_b"] {
				t.Fatalf("replay batch inserted %v, %v; want req_b only", ins, err)
			}
			if n := queryInt(t, st, `SELECT count(*) FROM usage_records WHERE request_id = 'req_a'`); n != 1 {
				t.Errorf("%d records of req_a, want 1", n)
			}
			if n := queryInt(t, st, `SELECT count(*) FROM usage_attempts WHERE request_id = 'req_a'`); n != 2 {
				t.Errorf("%d attempts of req_a, want 2", n)
			}
			if bal := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); bal != 1_000_000-2*1500 {
				t.Errorf("balance %d, want %d (two requests charged once each)", bal, 1_000_000-2*1500)
			}
			if n := queryInt(t, st, `SELECT requests FROM usage_key_totals WHERE api_key_id = $1`, f.key); n != 2 {
				t.Errorf("key totals count %d requests, want 2", n)
			}
			if got, err := st.GetUsage(ctx, "req_a"); err != nil || got.CostMicros != 1500 {
				t.Errorf("GetUsage(req_a) = %+v, %v", got, err)
			}
		})
	}
}

// A row of a month without a partition lands in the DEFAULT partition, and creating the
// month moves it there; creating it again does nothing.
func TestEnsureUsagePartitions(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	for i := 0; i <= UsageMonthsAhead; i++ { // made by the migration
		m := monthStart(time.Now()).AddDate(0, i, 0).Format("200601")
		if !tableExists(t, st, "usage_records_p"+m) || !tableExists(t, st, "usage_attempts_p"+m) {
			t.Fatalf("no partitions of %s after Migrate", m)
		}
	}
	future := time.Date(2031, 5, 10, 12, 0, 0, 0, time.UTC)
	f := seedLedger(t, st, 1_000_000)
	if ins, err := st.WriteUsage(ctx, f.failoverWrite("req_future")); err != nil || !ins {
		t.Fatalf("WriteUsage = %v, %v", ins, err)
	}
	backdate(t, st, "req_future", future)
	if p := partitionOf(t, st, "usage_records", "req_future"); p != "usage_records_default" {
		t.Fatalf("record in %s, want the default partition", p)
	}
	n, err := st.EnsureUsagePartitions(ctx, future)
	if err != nil || n != 2*(UsageMonthsAhead+1) {
		t.Fatalf("EnsureUsagePartitions = %d, %v; want %d tables", n, err, 2*(UsageMonthsAhead+1))
	}
	for table, want := range map[string]string{"usage_records": "usage_records_p203105", "usage_attempts": "usage_attempts_p203105"} {
		if p := partitionOf(t, st, table, "req_future"); p != want {
			t.Errorf("%s row in %s, want %s", table, p, want)
		}
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_records_default`) + queryInt(t, st, `SELECT count(*) FROM usage_attempts_default`); n != 0 {
		t.Errorf("%d rows left in the default partitions", n)
	}
	if n, err := st.EnsureUsagePartitions(ctx, future); err != nil || n != 0 {
		t.Errorf("second EnsureUsagePartitions = %d, %v; want 0", n, err)
	}
	// A time filter prunes to the months it covers.
	page, err := st.ListUsage(ctx, UsageFilter{From: future.AddDate(0, 0, -1), To: future.AddDate(0, 0, 1)}, 0, 10)
	if err != nil || len(page.Records) != 1 || page.Records[0].RequestID != "req_future" {
		t.Errorf("ListUsage over May 2031 = %+v, %v", page, err)
	}
}

// Dropping old months removes their records, attempts and request ids, and nothing else.
func TestDropUsageMonthsBefore(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	old := time.Date(2020, 1, 15, 0, 0, 0, 0, time.UTC)
	if _, err := st.EnsureUsagePartitions(ctx, old); err != nil {
		t.Fatal(err)
	}
	f := seedLedger(t, st, 1_000_000)
	if _, _, err := st.WriteUsageBatch(ctx, []UsageWrite{f.failoverWrite("req_old"), f.failoverWrite("req_now")}); err != nil {
		t.Fatal(err)
	}
	backdate(t, st, "req_old", old)

	if _, err := st.DropUsageMonthsBefore(ctx, time.Now().AddDate(0, 1, 0)); err == nil {
		t.Fatal("DropUsageMonthsBefore accepted a time after the current month's start")
	}
	dropped, err := st.DropUsageMonthsBefore(ctx, time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(dropped) != 1 || dropped[0] != "2020-01" {
		t.Fatalf("DropUsageMonthsBefore = %v, %v; want [2020-01]", dropped, err)
	}
	if tableExists(t, st, "usage_records_p202001") || tableExists(t, st, "usage_attempts_p202001") {
		t.Error("January 2020's partitions are still there")
	}
	if !tableExists(t, st, "usage_records_p202002") {
		t.Error("February 2020's partition was dropped")
	}
	if _, err := st.GetUsage(ctx, "req_old"); err != ErrUsageNotFound {
		t.Errorf("GetUsage(req_old) after the drop: %v, want ErrUsageNotFound", err)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_request_ids WHERE request_id = 'req_old'`); n != 0 {
		t.Errorf("req_old's request id kept")
	}
	if got, err := st.GetUsage(ctx, "req_now"); err != nil || got.RequestID != "req_now" {
		t.Errorf("GetUsage(req_now) = %+v, %v", got, err)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_attempts WHERE request_id = 'req_now'`); n != 2 {
		t.Errorf("%d attempts of req_now, want 2", n)
	}
	if dropped, err := st.DropUsageMonthsBefore(ctx, time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC)); err != nil || len(dropped) != 0 {
		t.Errorf("second drop = %v, %v; want nothing", dropped, err)
	}
}
