package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Groupings of SummarizeUsage.
const (
	GroupByDay     = "day"
	GroupByModel   = "model"
	GroupByAPIKey  = "api_key"
	GroupByAccount = "account"
	GroupByUser    = "user"
)

// groupKeys are the SQL expressions of the groupings.
var groupKeys = map[string]string{
	GroupByDay:     "", // needs the time zone argument: see SummarizeUsage
	GroupByModel:   "model",
	GroupByAPIKey:  "api_key_id",
	GroupByAccount: "COALESCE(account_id, 0)",
	GroupByUser:    "user_id",
}

// ValidGroupBy reports whether SummarizeUsage knows the grouping.
func ValidGroupBy(g string) bool {
	_, ok := groupKeys[g]
	return ok
}

// UsageTotals are the sums over a set of usage records.
type UsageTotals struct {
	Requests             int64
	InputTokens          int64
	OutputTokens         int64
	CacheReadTokens      int64
	CacheCreationTokens  int64
	ReasoningTokens      int64
	CostMicros           int64
	InputCostMicros      int64
	OutputCostMicros     int64
	CacheReadCostMicros  int64
	CacheWriteCostMicros int64
}

// Add adds o to t.
func (t *UsageTotals) Add(o UsageTotals) {
	t.Requests += o.Requests
	t.InputTokens += o.InputTokens
	t.OutputTokens += o.OutputTokens
	t.CacheReadTokens += o.CacheReadTokens
	t.CacheCreationTokens += o.CacheCreationTokens
	t.ReasoningTokens += o.ReasoningTokens
	t.CostMicros += o.CostMicros
	t.InputCostMicros += o.InputCostMicros
	t.OutputCostMicros += o.OutputCostMicros
	t.CacheReadCostMicros += o.CacheReadCostMicros
	t.CacheWriteCostMicros += o.CacheWriteCostMicros
}

// UsageGroup is the totals of one group of a summary. Key is the day (YYYY-MM-DD in the
// summary's time zone) or the model; ID is the api key, account (0 = none) or user id.
type UsageGroup struct {
	Key string
	ID  int64
	UsageTotals
}

const sqlTotalsColumns = `count(*), COALESCE(sum(input_tokens), 0)::bigint, COALESCE(sum(output_tokens), 0)::bigint,
    COALESCE(sum(cache_read_tokens), 0)::bigint, COALESCE(sum(cache_creation_tokens), 0)::bigint,
    COALESCE(sum(reasoning_tokens), 0)::bigint, COALESCE(sum(cost_micros), 0)::bigint,
    COALESCE(sum(input_cost_micros), 0)::bigint, COALESCE(sum(output_cost_micros), 0)::bigint,
    COALESCE(sum(cache_read_cost_micros), 0)::bigint, COALESCE(sum(cache_write_cost_micros), 0)::bigint`

func (t *UsageTotals) scanTargets() []any {
	return []any{&t.Requests, &t.InputTokens, &t.OutputTokens, &t.CacheReadTokens, &t.CacheCreationTokens,
		&t.ReasoningTokens, &t.CostMicros, &t.InputCostMicros, &t.OutputCostMicros, &t.CacheReadCostMicros,
		&t.CacheWriteCostMicros}
}

// SummarizeUsage sums the records matching f by groupBy (one of the GroupBy constants), in
// ascending key order. Days are calendar days in loc (nil = UTC).
func (s *Store) SummarizeUsage(ctx context.Context, f UsageFilter, groupBy string, loc *time.Location) ([]UsageGroup, error) {
	key, ok := groupKeys[groupBy]
	if !ok {
		return nil, fmt.Errorf("summarizing usage: unknown grouping %q", groupBy)
	}
	where, args := f.where()
	if groupBy == GroupByDay {
		if loc == nil {
			loc = time.UTC
		}
		args = append(args, loc.String())
		key = "to_char(created_at AT TIME ZONE $" + strconv.Itoa(len(args)) + ", 'YYYY-MM-DD')"
	}
	sql := "SELECT (" + key + ")::text, " + sqlTotalsColumns + " FROM usage_records WHERE " + where +
		" GROUP BY " + key + " ORDER BY " + key
	rows, err := s.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("summarizing usage: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageGroup, error) {
		var g UsageGroup
		if err := r.Scan(append([]any{&g.Key}, g.scanTargets()...)...); err != nil {
			return g, err
		}
		if groupBy != GroupByDay && groupBy != GroupByModel {
			id, err := strconv.ParseInt(g.Key, 10, 64)
			if err != nil {
				return g, fmt.Errorf("group key %q: %w", g.Key, err)
			}
			g.Key, g.ID = "", id
		}
		return g, nil
	})
	if err != nil {
		return nil, fmt.Errorf("summarizing usage: %w", err)
	}
	return out, nil
}
