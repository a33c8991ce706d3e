package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// The running totals of each key's usage (migration 0011): usage_key_totals since the key's
// first record, usage_key_days per calendar day of the billing time zone. They are added to
// by sqlWriteUsageBatch for exactly the records it inserts, and read by KeyUsage instead of
// the records.

// keyTotalsColumns are the summed columns of usage_records that the totals tables keep under
// the same names, in the order of UsageTotals.scanTargets after Requests.
var keyTotalsColumns = []string{"input_tokens", "output_tokens", "cache_read_tokens",
	"cache_creation_tokens", "reasoning_tokens", "cost_micros", "input_cost_micros",
	"output_cost_micros", "cache_read_cost_micros", "cache_write_cost_micros"}

var keyTotalsColumnList = strings.Join(keyTotalsColumns, ", ")

// sqlAddKeyTotals renders the CTEs that add the records of CTE from (with api_key_id,
// created_at and keyTotalsColumns) to their keys' totals, the days counted in the time zone
// named by parameter tz. Each key (and key-day) is one row of the upsert, in key order, so
// concurrent batches lock the totals rows in the same order.
func sqlAddKeyTotals(from, tz string) string {
	sums := sqlSums(true)
	var adds strings.Builder
	for _, c := range keyTotalsColumns {
		adds.WriteString(", " + c + " = %[1]s." + c + " + EXCLUDED." + c)
	}
	// set adds the excluded (new) row to the stored one of table.
	set := func(table string) string {
		return strings.ReplaceAll("requests = %[1]s.requests + EXCLUDED.requests"+adds.String(), "%[1]s", table)
	}
	return `key_days AS (
    SELECT api_key_id, (created_at AT TIME ZONE ` + tz + `::text)::date AS day, count(*) AS requests` + sums + `
    FROM ` + from + ` GROUP BY 1, 2
), add_key_totals AS (
    INSERT INTO usage_key_totals (api_key_id, requests, ` + keyTotalsColumnList + `)
    SELECT api_key_id, sum(requests)::bigint` + sums + `
    FROM key_days GROUP BY api_key_id ORDER BY api_key_id
    ON CONFLICT (api_key_id) DO UPDATE SET ` + set("usage_key_totals") + `
), add_key_days AS (
    INSERT INTO usage_key_days (api_key_id, day, requests, ` + keyTotalsColumnList + `)
    SELECT api_key_id, day, requests, ` + keyTotalsColumnList + `
    FROM key_days ORDER BY api_key_id, day
    ON CONFLICT (api_key_id, day) DO UPDATE SET ` + set("usage_key_days") + `
)`
}

// sqlLockKeyTotals keeps settlements out while the totals are rebuilt: a settlement's
// transaction holds row locks on them until it commits, so the rebuild also waits for the
// records in flight, and its read sees every committed record.
const sqlLockKeyTotals = `LOCK TABLE usage_key_totals, usage_key_days IN EXCLUSIVE MODE`

// sqlRebuildKeyTotals recomputes every key's totals from the records, the days counted in
// the time zone named by $1 (the backfill of migration 0011).
var sqlRebuildKeyTotals = []string{
	`DELETE FROM usage_key_totals`,
	`DELETE FROM usage_key_days`,
	`INSERT INTO usage_key_totals (api_key_id, requests, ` + keyTotalsColumnList + `)
SELECT api_key_id, count(*)` + sqlSums(false) + ` FROM usage_records GROUP BY api_key_id`,
	`INSERT INTO usage_key_days (api_key_id, day, requests, ` + keyTotalsColumnList + `)
SELECT api_key_id, (created_at AT TIME ZONE $1::text)::date, count(*)` + sqlSums(false) + `
FROM usage_records GROUP BY 1, 2`,
}

// sqlSums lists ", sum(c)::bigint" for each of keyTotalsColumns, each named AS c if named.
func sqlSums(named bool) string {
	var b strings.Builder
	for _, c := range keyTotalsColumns {
		b.WriteString(", sum(" + c + ")::bigint")
		if named {
			b.WriteString(" AS " + c)
		}
	}
	return b.String()
}

// RebuildKeyTotals recomputes the keys' running totals from the usage records, in the
// current billing time zone: the repair after records were written or deleted outside
// settlement, or after POOLGATE_BILLING_TIMEZONE changed (the day rows written before count
// the old zone's days). It reads every record and blocks settlements while it runs.
func (s *Store) RebuildKeyTotals(ctx context.Context) error {
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlLockKeyTotals); err != nil {
			return err
		}
		for i, q := range sqlRebuildKeyTotals {
			var err error
			if i == len(sqlRebuildKeyTotals)-1 {
				_, err = tx.Exec(ctx, q, billing.Location().String())
			} else {
				_, err = tx.Exec(ctx, q)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuilding the keys' usage totals: %w", err)
	}
	return nil
}
