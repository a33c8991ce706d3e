// Package catalogue is the model catalogue (docs/billing.md, "Prices and the model
// catalogue"): per model its prices per token (input, output, cache read, 5-minute and
// 1-hour cache writes, one long-context tier), its context window and its maximum output,
// in the field names of LiteLLM's model_prices_and_context_window.json. The shipped
// catalogue (catalogue.json, sources in each entry's "source") names exact models only; an
// operator's import (POST /api/v1/admin/prices/import) adds to it.
package catalogue

import (
	_ "embed"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// Platforms of a catalogue entry, as groups name them.
const (
	PlatformOpenAI    = "openai"
	PlatformAnthropic = "anthropic"
)

// Entry is one model of the catalogue.
type Entry struct {
	Model    string // lower case; a '*' suffix only in an operator's import
	Provider string // litellm_provider
	Price    usage.Price
	// MaxInput is the context window and MaxOutput the maximum output, in tokens; 0: unknown.
	MaxInput  int64
	MaxOutput int64
}

// Platform is the group platform that serves the entry's provider ("" for others).
func (e Entry) Platform() string {
	switch e.Provider {
	case "anthropic":
		return PlatformAnthropic
	case "openai", "text-completion-openai", "codex":
		return PlatformOpenAI
	}
	return ""
}

// Catalogue is an immutable set of entries by model name.
type Catalogue struct {
	byModel map[string]Entry
}

// New builds a catalogue of entries; a later entry of the same model wins.
func New(entries []Entry) *Catalogue {
	c := &Catalogue{byModel: make(map[string]Entry, len(entries))}
	for _, e := range entries {
		c.byModel[e.Model] = e
	}
	return c
}

// Entries returns every entry, by model.
func (c *Catalogue) Entries() []Entry {
	out := make([]Entry, 0, len(c.byModel))
	for _, e := range c.byModel {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out
}

// Lookup finds the entry of exactly model (case-insensitive); wildcards are the price
// table's business (usage.PriceTable), never the catalogue's.
func (c *Catalogue) Lookup(model string) (Entry, bool) {
	e, ok := c.byModel[strings.ToLower(strings.TrimSpace(model))]
	return e, ok
}

// MaxOutput is the model's maximum output in tokens; ok is false when the catalogue does
// not know it.
func (c *Catalogue) MaxOutput(model string) (int64, bool) {
	e, ok := c.Lookup(model)
	if !ok || e.MaxOutput <= 0 {
		return 0, false
	}
	return e.MaxOutput, true
}

// Models lists the exact model names the catalogue has for a group platform, sorted.
func (c *Catalogue) Models(platform string) []string {
	var out []string
	for k, e := range c.byModel {
		if e.Platform() == platform && !strings.HasSuffix(k, "*") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

//go:embed catalogue.json
var shippedJSON []byte

var shipped = mustParseShipped()

func mustParseShipped() *Catalogue {
	entries, _, err := Parse(shippedJSON)
	if err != nil {
		panic("catalogue: catalogue.json: " + err.Error()) // a build defect; the tests parse it
	}
	return New(entries)
}

// Shipped is the catalogue that ships with this build.
func Shipped() *Catalogue { return shipped }

var current atomic.Pointer[Catalogue]

// Current is the shipped catalogue with the operator's imports on top, as this instance
// last loaded them (package prices keeps it up to date).
func Current() *Catalogue {
	if c := current.Load(); c != nil {
		return c
	}
	return shipped
}

// SetCurrent replaces the catalogue Current returns.
func SetCurrent(c *Catalogue) { current.Store(c) }

// MaxOutput is Current().MaxOutput (docs/design.md, "Models a key can use").
func MaxOutput(model string) (int64, bool) { return Current().MaxOutput(model) }

// Models is Current().Models (docs/design.md, "Models a key can use").
func Models(platform string) []string { return Current().Models(platform) }
