package prices

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/catalogue"
	"github.com/poolgate/poolgate/controlsvc/internal/livecache/livecachetest"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestEffectiveOverridesReplaceAndAdd(t *testing.T) {
	t.Parallel()
	defaults := make(map[string]usage.Price) // the shipped catalogue's prices by model
	for _, e := range catalogue.Shipped().Entries() {
		defaults[e.Model] = e.Price
	}
	got := Effective([]store.ModelPrice{
		{Model: "gpt-4o", InputMicros: 1, OutputMicros: 2, CacheReadMicros: 3, CacheWriteMicros: 4, Note: "n"},
		{Model: "my-model", InputMicros: 5, OutputMicros: 6},
	})
	if len(got) != len(defaults)+1 {
		t.Fatalf("%d entries, want %d", len(got), len(defaults)+1)
	}
	if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Model < got[j].Model }) {
		t.Error("entries are not sorted by model")
	}
	for _, e := range got {
		switch e.Model {
		case "gpt-4o":
			if e.Source != SourceOverride || e.Price != (usage.Price{Input: 1, Output: 2, CacheRead: 3, CacheWrite: 4}) || e.Note != "n" {
				t.Errorf("override of a default = %+v", e)
			}
		case "my-model":
			if e.Source != SourceOverride || e.Price.Input != 5 {
				t.Errorf("new key = %+v", e)
			}
		default:
			if e.Source != SourceDefault || e.Price != defaults[e.Model] {
				t.Errorf("default entry %+v", e)
			}
		}
	}
}

// TestChangeReachesOtherInstance: an override written and announced by one instance prices
// requests in another within a second (the periodic reload is an hour away).
func TestChangeReachesOtherInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Open(t)
	caches := livecachetest.Start(t, 2, testenv.RedisURL(t), Channel, func(rdb *redis.Client) (*Cache, error) {
		return NewCache(st, rdb, time.Hour, nil)
	})
	a, b := caches[0], caches[1]
	if _, _, ok := b.Table().Lookup("llama-3"); ok {
		t.Fatal("llama-3 priced before any override")
	}
	if _, _, err := st.PutPrice(ctx, store.ModelPrice{Model: "llama-*", InputMicros: 100, OutputMicros: 200}); err != nil {
		t.Fatal(err)
	}
	if err := a.Changed(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		if p, key, ok := b.Table().Lookup("llama-3"); ok {
			if key != "llama-*" || p.Output != 200 {
				t.Fatalf("other instance prices llama-3 as %+v by %q", p, key)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the other instance did not reload within a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExactCatalogueEntryBeatsWildcards: an operator's prefix price never
// reprices a model the catalogue names exactly; it prices the models the catalogue lacks.
func TestExactCatalogueEntryBeatsWildcards(t *testing.T) {
	t.Parallel()
	table, err := Table(Effective([]store.ModelPrice{
		{Model: "claude-opus-4*", InputMicros: 15_000_000, OutputMicros: 75_000_000},
		{Model: "opus-4*", InputMicros: 15_000_000, OutputMicros: 75_000_000},
	}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, model, wantKey string
		wantInput            int64
	}{
		{"exact catalogue entry", "claude-opus-4-8", "claude-opus-4-8", 5_000_000},
		{"exact, other case", "Claude-Opus-4-8", "claude-opus-4-8", 5_000_000},
		{"not in the catalogue: the wildcard", "claude-opus-4-9", "claude-opus-4*", 15_000_000},
		{"an operator's bare prefix", "opus-4-8", "opus-4*", 15_000_000},
		{"long-context model", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", 3_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, key, ok := table.Lookup(tt.model)
			if !ok || key != tt.wantKey || p.Input != tt.wantInput {
				t.Errorf("Lookup(%q) = %+v by %q, %v; want %d by %q", tt.model, p, key, ok, tt.wantInput, tt.wantKey)
			}
		})
	}
}
