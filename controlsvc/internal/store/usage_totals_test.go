package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// sqlKeyTotalsFromRecords is the from-scratch aggregate the running totals replace: a key's
// records since $2 (today), since $3 (this month) and in all.
var sqlKeyTotalsFromRecords = `
SELECT ` + filteredTotals("created_at >= $2") + `, ` + filteredTotals("created_at >= $3") + `,
       ` + sqlTotalsColumns + `
FROM usage_records WHERE api_key_id = $1`

func filteredTotals(cond string) string {
	f := " FILTER (WHERE " + cond + ")"
	out := "count(*)" + f
	for _, c := range keyTotalsColumns {
		out += ", COALESCE(sum(" + c + ")" + f + ", 0)::bigint"
	}
	return out
}

// fromRecords is the key's today, month and lifetime totals summed over its records.
func fromRecords(t *testing.T, st *Store, key int64, today, month time.Time) [3]UsageTotals {
	t.Helper()
	var out [3]UsageTotals
	targets := append(append(out[0].scanTargets(), out[1].scanTargets()...), out[2].scanTargets()...)
	if err := st.Pool.QueryRow(context.Background(), sqlKeyTotalsFromRecords, key, today, month).Scan(targets...); err != nil {
		t.Fatal(err)
	}
	return out
}

func windowStarts(now time.Time) (today, month time.Time) {
	loc := billing.Location()
	local := now.In(loc)
	return billing.DailyWindow(now, loc).Start, time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc)
}

// Concurrent batches of reports, with replays inside a batch and across batches, leave each
// key's running totals equal to the sums over its records: a duplicate adds nothing.
func TestKeyTotalsMatchRecordsAfterReplays(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 1_000_000_000)
	other := admSQL(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix)
		VALUES ($1, $2, 'hash-other-totals', 'sk-pg-') RETURNING id`, f.user, f.group)
	write := func(key int64, id string, n int64) UsageWrite {
		u := f.failoverWrite(id)
		u.APIKeyID = key
		u.InputTokens, u.OutputTokens, u.ReasoningTokens = n, 2*n, n/2
		u.CostMicros, u.InputCostMicros, u.OutputCostMicros = 3*n+200, n, 2*n
		return u
	}
	const workers, batches = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*batches)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var batch []UsageWrite
				for i := range 5 {
					key := f.key
					if i%2 == 1 {
						key = other
					}
					// Workers share request ids: each id is written by every worker.
					id := fmt.Sprintf("req_%d_%d", b, i)
					batch = append(batch, write(key, id, int64(10*b+i+1)))
				}
				batch = append(batch, batch[0], batch[3]) // replays inside the batch
				if w == 0 && b > 0 {
					batch = append(batch, write(f.key, fmt.Sprintf("req_%d_0", b-1), 999)) // a replay of an older batch
				}
				if _, _, err := st.WriteUsageBatch(ctx, batch); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_records`); n != batches*5 {
		t.Fatalf("%d records, want %d", n, batches*5)
	}

	now := time.Now()
	today, month := windowStarts(now)
	for _, k := range []struct {
		id   int64
		hash string
	}{{f.key, fmt.Sprintf("hash-%d-%d", f.user, f.group)}, {other, "hash-other-totals"}} {
		got, err := st.KeyUsage(ctx, k.hash, now, today, month)
		if err != nil {
			t.Fatal(err)
		}
		want := fromRecords(t, st, k.id, today, month)
		if got.Today != want[0] || got.Month != want[1] || got.Total != want[2] || got.Total.Requests == 0 {
			t.Errorf("key %d: totals today %+v month %+v total %+v\nrecords say %+v", k.id, got.Today, got.Month, got.Total, want)
		}
	}

	// Rebuilding from the records changes nothing.
	snapshot := func() string {
		var s string
		if err := st.Pool.QueryRow(ctx, `SELECT (SELECT string_agg(t::text, ';' ORDER BY api_key_id) FROM usage_key_totals t) ||
			'|' || (SELECT string_agg(d::text, ';' ORDER BY api_key_id, day) FROM usage_key_days d)`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()
	if err := st.RebuildKeyTotals(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(); after != before {
		t.Errorf("totals kept at settlement\n%s\ndiffer from the rebuilt ones\n%s", before, after)
	}
}

// Migration 0011 backfills the totals of the records stored before it, per day of the
// billing time zone, and settlement adds to the backfilled rows.
func TestMigrationKeyTotalsBackfill(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	if err := st.migrate(ctx, migrationsBefore(t, "0011_")); err != nil {
		t.Fatalf("migrating to 0010: %v", err)
	}
	f := seedLedger(t, st, 1_000_000)
	now := time.Now()
	today, month := windowStarts(now)
	for i, at := range []time.Time{now, today.Add(-time.Minute), month.Add(-time.Minute), now.AddDate(-1, 0, 0)} {
		admExec(t, st, `INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, model, status, attempts,
			input_tokens, cost_micros, output_cost_micros, created_at) VALUES ($1, $2, $3, $4, 'gpt-4o', 200, 1, $5, $6, $6, $7)`,
			fmt.Sprintf("req_old_%d", i), f.user, f.key, f.group, 10+i, 100*(i+1), at)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over existing records: %v", err)
	}
	if _, err := st.WriteUsage(ctx, f.failoverWrite("req_new")); err != nil {
		t.Fatal(err)
	}
	got, err := st.KeyUsage(ctx, fmt.Sprintf("hash-%d-%d", f.user, f.group), now, today, month)
	if err != nil {
		t.Fatal(err)
	}
	want := fromRecords(t, st, f.key, today, month)
	if got.Today != want[0] || got.Month != want[1] || got.Total != want[2] || got.Total.Requests != 5 {
		t.Errorf("totals today %+v month %+v total %+v\nrecords say %+v", got.Today, got.Month, got.Total, want)
	}
}
