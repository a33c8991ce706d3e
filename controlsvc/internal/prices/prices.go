// Package prices keeps the effective model price table of a controlsvc instance: the shipped
// model catalogue (package catalogue: exact names only) with the operator's overrides from
// model_prices on top (exact names, '*' prefixes, imported catalogue entries), reloaded in
// every instance within a second of an admin change (package livecache). Each load also
// updates catalogue.Current, so MaxOutput and Models see the imports.
package prices

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/catalogue"
	"github.com/poolgate/poolgate/controlsvc/internal/livecache"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// Channel is the Redis pub/sub channel of price changes.
const Channel = "pg:prices:changed"

// Sources of an effective entry.
const (
	SourceDefault  = "default"
	SourceOverride = "override"
)

// Loader reads the stored overrides; *store.Store implements it.
type Loader interface {
	ListPrices(ctx context.Context) ([]store.ModelPrice, error)
}

var _ Loader = (*store.Store)(nil)

// Entry is one key of the effective table.
type Entry struct {
	Model     string
	Price     usage.Price
	Source    string
	Note      string
	UpdatedAt time.Time // zero for defaults
	// Spec is set for shipped and imported catalogue entries (context window, max output).
	Spec *catalogue.Entry
}

// Effective merges the shipped catalogue and the overrides, sorted by key: an override
// replaces the default of the same key. An imported override whose stored spec no longer
// parses keeps its base prices (the columns) without the spec's extras.
func Effective(overrides []store.ModelPrice) []Entry {
	byKey := make(map[string]Entry)
	for _, e := range catalogue.Shipped().Entries() {
		spec := e
		byKey[e.Model] = Entry{Model: e.Model, Price: e.Price, Source: SourceDefault, Spec: &spec}
	}
	for _, o := range overrides {
		e := Entry{
			Model: o.Model, Source: SourceOverride, Note: o.Note, UpdatedAt: o.UpdatedAt,
			Price: usage.Price{Input: o.InputMicros, Output: o.OutputMicros, CacheRead: o.CacheReadMicros, CacheWrite: o.CacheWriteMicros},
		}
		if spec, ok := catalogue.ParseSpec(o.Model, o.Spec); ok {
			e.Price, e.Spec = spec.Price, &spec
		}
		byKey[o.Model] = e
	}
	out := make([]Entry, 0, len(byKey))
	for _, e := range byKey {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out
}

// Catalogue is the catalogue of the effective entries that have a spec (imports on top of
// the shipped entries).
func Catalogue(entries []Entry) *catalogue.Catalogue {
	specs := make([]catalogue.Entry, 0, len(entries))
	for _, e := range entries {
		if e.Spec != nil {
			specs = append(specs, *e.Spec)
		}
	}
	return catalogue.New(specs)
}

// Table is the effective table of entries, ready for lookups.
func Table(entries []Entry) (*usage.PriceTable, error) {
	m := make(map[string]usage.Price, len(entries))
	for _, e := range entries {
		m[e.Model] = e.Price
	}
	return usage.NewPriceTable(m)
}

// Cache holds this instance's effective price table.
type Cache struct {
	*livecache.Cache[*usage.PriceTable]
}

// NewCache assembles a cache holding the shipped defaults; it does no I/O. refresh <= 0
// means livecache.DefaultRefresh.
func NewCache(loader Loader, rdb redis.UniversalClient, refresh time.Duration, log *slog.Logger) (*Cache, error) {
	initial, err := Table(Effective(nil))
	if err != nil {
		return nil, err
	}
	load := func(ctx context.Context) (*usage.PriceTable, error) {
		overrides, err := loader.ListPrices(ctx)
		if err != nil {
			return nil, err
		}
		entries := Effective(overrides)
		t, err := Table(entries)
		if err != nil {
			return nil, err
		}
		catalogue.SetCurrent(Catalogue(entries))
		return t, nil
	}
	return &Cache{livecache.New("model prices", Channel, initial, load, rdb, refresh, log)}, nil
}

// Table returns the current effective table.
func (c *Cache) Table() *usage.PriceTable { return c.Get() }
