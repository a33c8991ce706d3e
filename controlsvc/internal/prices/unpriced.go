package prices

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Unpriced models seen (docs/design.md, "Model catalogue admin endpoints"): each admission
// of a model without a price counts in a Redis hash per hour, kept 25 hours; GET
// /api/v1/admin/prices/unpriced sums the last 24.

const (
	unpricedPrefix = "pg:unpriced:"
	unpricedTTL    = 25 * time.Hour
	// MaxUnpricedModels bounds one hour's hash: a client sending random model names must
	// not grow Redis without end.
	MaxUnpricedModels = 1000
)

// noteScript counts model in the hour's hash unless the hash is full of other models.
var noteScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 0`)

func unpricedKey(t time.Time) string {
	return unpricedPrefix + strconv.FormatInt(t.UTC().Unix()/3600, 10)
}

// NoteUnpriced counts one request of model, which has no price, in the current hour.
func NoteUnpriced(ctx context.Context, rdb redis.UniversalClient, model string, now time.Time) error {
	return noteScript.Run(ctx, rdb, []string{unpricedKey(now)}, model, MaxUnpricedModels,
		int64(unpricedTTL/time.Second)).Err()
}

// UnpricedModel is a model without a price and how often it was asked for.
type UnpricedModel struct {
	Model string `json:"model"`
	Count int64  `json:"count"`
}

// Unpriced sums the last 24 hours' counts (this hour included), most asked first.
func Unpriced(ctx context.Context, rdb redis.UniversalClient, now time.Time) ([]UnpricedModel, error) {
	pipe := rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, 0, 24)
	for h := 0; h < 24; h++ {
		cmds = append(cmds, pipe.HGetAll(ctx, unpricedKey(now.Add(-time.Duration(h)*time.Hour))))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	sums := make(map[string]int64)
	for _, c := range cmds {
		for m, v := range c.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			sums[m] += n
		}
	}
	out := make([]UnpricedModel, 0, len(sums))
	for m, n := range sums {
		out = append(out, UnpricedModel{Model: m, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Model < out[j].Model
	})
	return out, nil
}

// UnpricedLog reads the counts of one Redis.
type UnpricedLog struct{ rdb redis.UniversalClient }

// NewUnpricedLog reads the counts kept in rdb.
func NewUnpricedLog(rdb redis.UniversalClient) *UnpricedLog { return &UnpricedLog{rdb: rdb} }

// Unpriced is the package's Unpriced on this log's Redis.
func (l *UnpricedLog) Unpriced(ctx context.Context, now time.Time) ([]UnpricedModel, error) {
	return Unpriced(ctx, l.rdb, now)
}
