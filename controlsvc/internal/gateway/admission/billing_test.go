package admission

import (
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

import ()

// Every input token of a capped reservation is priced at the dearer of input and cache
// write: an Anthropic request that writes its whole prompt to the cache stays covered.
func TestCappedEstimateCoversCacheWrites(t *testing.T) {
	p := usage.Price{Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000}
	key := store.KeyAuth{CapOutputTokens: true, DefaultMaxOutputTokens: 50, RateMicros: usage.RateUnit}
	got := estimateMicros(key, p, 400, 0)
	worst := usage.Cost(usage.Tokens{CacheCreation: 400, Output: 50}, p, usage.RateUnit)
	if got < worst {
		t.Errorf("capped estimate %d below the cost of writing the whole input to the cache %d", got, worst)
	}
	if want := usage.Cost(usage.Tokens{Input: 400, Output: 50}, usage.Price{Input: 3_750_000, Output: 15_000_000}, usage.RateUnit); got != want {
		t.Errorf("capped estimate %d, want %d", got, want)
	}
	if c := outputCap(key, 0, "", "my-model"); c != 50 {
		t.Errorf("outputCap with no maximum named = %d, want the group default 50", c)
	}
	if c := outputCap(key, 70, "", "my-model"); c != 0 {
		t.Errorf("outputCap with the client's own maximum = %d, want 0 (the body is sent as it is)", c)
	}
	key.CapOutputTokens = false
	if c := outputCap(key, 0, "", "my-model"); c != 0 {
		t.Errorf("outputCap of a group without the cap = %d, want 0", c)
	}
	// A converted request always gets the limit its reservation counted.
	if c := outputCap(key, 0, convertResponsesToMessages, "my-model"); c != 50 {
		t.Errorf("outputCap of a converted request of an uncatalogued model = %d, want the group default 50", c)
	}
	// ... the catalogue's maximum output of the model served when it has one (contract E).
	if c := outputCap(key, 0, convertResponsesToMessages, "claude-sonnet-4-5"); c != 64000 {
		t.Errorf("outputCap of a converted claude-sonnet-4-5 request = %d, want its max output 64000", c)
	}
	if c := outputCap(key, 70, convertResponsesToMessages, "claude-sonnet-4-5"); c != 0 {
		t.Errorf("outputCap of a converted request naming 70 = %d, want 0", c)
	}
}
