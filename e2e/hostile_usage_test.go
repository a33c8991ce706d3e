package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestKeyUsageCostDoesNotGrowWithRecords: GET /v1/usage through Traefik reads no usage
// record, for a key with 10 records as for one with 100 000: it answers from the running
// totals kept at settlement. The records are written straight into the table (the totals
// then lag behind them, which does not matter here: the test is about what a call reads).
func TestKeyUsageCostDoesNotGrowWithRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, gw.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	type key struct {
		tn      tenant
		records int
	}
	keys := []key{{records: 10}, {records: 100_000}}
	for i := range keys {
		keys[i].tn, _ = newTenant(t)
		if _, err := conn.Exec(ctx, `
INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, model, status, attempts,
    input_tokens, output_tokens, cost_micros, input_cost_micros, output_cost_micros)
SELECT 'cost-' || $1::bigint || '-' || i, $2, $1, $3, 'gpt-4o', 200, 1, 10, 5, 3, 1, 2
FROM generate_series(1, $4::int) AS i`, keys[i].tn.KeyID, keys[i].tn.UserID, keys[i].tn.GroupID, keys[i].records); err != nil {
			t.Fatal(err)
		}
	}
	// Reads of the records table so far, by every session: scans and rows. The table is
	// partitioned by month (docs/design.md, "Ledger partitions"): its reads are its
	// partitions' (usage_records_pYYYYMM and usage_records_default).
	reads := func(wait time.Duration) int64 {
		return pgStat(ctx, t, conn, wait, `SELECT COALESCE(sum(COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0) + COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0)), 0)::bigint
FROM pg_stat_user_tables WHERE relname = 'usage_records' OR relname = 'usage_records_default' OR relname ~ '^usage_records_p[0-9]{6}$'`)
	}
	before := reads(pgStatFlush)
	for _, k := range keys {
		for i := 0; i < 3; i++ {
			req, _ := http.NewRequest(http.MethodGet, gw.GatewayURL+"/v1/usage", nil)
			req.Header.Set("Authorization", "Bearer "+k.tn.Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /v1/usage = %d", resp.StatusCode)
			}
			time.Sleep(1100 * time.Millisecond) // past the one-second answer cache
		}
	}
	read := reads(pgStatFlush) - before
	t.Logf("3 calls for a key of 10 records and 3 for one of 100 000 read the records table %d times (scans + rows)", read)
	if read != 0 {
		t.Errorf("GET /v1/usage read the records table (%d scans + rows), want 0", read)
	}
	// The meter itself: an aggregate over the big key's records shows up in it.
	before = reads(0)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM usage_records WHERE api_key_id = $1`, keys[1].tn.KeyID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	if got := reads(time.Second) - before; n != int64(keys[1].records) || got == 0 {
		t.Fatalf("the meter missed an aggregate over %d records: %d", n, got)
	}
}
