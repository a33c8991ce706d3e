package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The ledger's month partitions (migration 0021; docs/design.md, "Ledger partitions"):
// usage_records and usage_attempts hold one partition per UTC calendar month, named
// <table>_pYYYYMM, and a DEFAULT partition that catches a row of a month not created yet.

// UsageMonthsAhead is how many months after the current one EnsureUsagePartitions creates.
const UsageMonthsAhead = 2

// dropLockTimeout bounds the wait for the ledger's lock when a month is dropped: dropping a
// partition locks its parent briefly, and inserts queue behind a waiting drop.
const dropLockTimeout = 5 * time.Second

const (
	sqlEnsureUsageMonth = `SELECT poolgate_ensure_usage_month($1)`
	// sqlUsageMonths lists the month partitions of usage_records, oldest first.
	sqlUsageMonths = `
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'usage_records'::regclass AND c.relname ~ '^usage_records_p[0-9]{6}$'
ORDER BY c.relname`
	sqlDeleteRequestIDs = `DELETE FROM usage_request_ids WHERE created_at >= $1 AND created_at < $2`
)

// EnsureUsagePartitions creates the partitions of the current UTC month (of now) and of the
// UsageMonthsAhead months after it, where missing, and answers how many tables it created.
// Rows of those months in a DEFAULT partition are moved into their month.
func (s *Store) EnsureUsagePartitions(ctx context.Context, now time.Time) (int, error) {
	month := monthStart(now)
	created := 0
	for i := 0; i <= UsageMonthsAhead; i++ {
		var n int
		if err := s.Pool.QueryRow(ctx, sqlEnsureUsageMonth, month.AddDate(0, i, 0)).Scan(&n); err != nil {
			return created, fmt.Errorf("creating ledger partitions of %s: %w", month.AddDate(0, i, 0).Format("2006-01"), err)
		}
		created += n
	}
	return created, nil
}

// DropUsageMonthsBefore drops the ledger's month partitions (records and attempts) of every
// UTC month that ends at or before before, with their request ids, and answers the months
// dropped ("2006-01"). before must not be later than the current month's start: the
// current month is never dropped. The keys' running totals keep the dropped records
// (RebuildKeyTotals afterwards would count only the records left). To archive a month
// instead, detach and dump it (docs/design.md, "Ledger partitions").
func (s *Store) DropUsageMonthsBefore(ctx context.Context, before time.Time) ([]string, error) {
	if before.After(monthStart(time.Now())) {
		return nil, fmt.Errorf("dropping ledger months before %s: the current month cannot be dropped", before.UTC().Format(time.RFC3339))
	}
	var dropped []string
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		dropped = dropped[:0]
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", dropLockTimeout.Milliseconds())); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, sqlUsageMonths)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range names {
			suffix := name[len("usage_records_p"):]
			lo, err := time.Parse("200601", suffix)
			if err != nil {
				return fmt.Errorf("partition %s: %w", name, err)
			}
			hi := lo.AddDate(0, 1, 0)
			if hi.After(before) {
				break // oldest first: every later month ends later
			}
			if _, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{name}.Sanitize()+`, `+
				pgx.Identifier{"usage_attempts_p" + suffix}.Sanitize()); err != nil {
				return fmt.Errorf("dropping %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, sqlDeleteRequestIDs, lo, hi); err != nil {
				return fmt.Errorf("deleting the request ids of %s: %w", name, err)
			}
			dropped = append(dropped, lo.Format("2006-01"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dropping ledger months before %s: %w", before.UTC().Format("2006-01"), err)
	}
	return dropped, nil
}

// monthStart is the start of t's UTC calendar month.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}
