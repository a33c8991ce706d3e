package usage

import "strings"

// Price is what a model costs, in integer micro-dollars per million tokens per bucket
// (USD 2.50 per million tokens = 2_500_000), so cost arithmetic stays exact.
type Price struct {
	Input      int64
	Output     int64
	CacheRead  int64
	CacheWrite int64
}

// defaultPrices is the built-in table until pricing becomes configurable. Keys match the
// model name exactly or as a prefix, the longest key winning, so dated variants
// ("gpt-4o-2024-08-06", "claude-sonnet-4-20250514") take their family's price.
// Sources: https://openai.com/api/pricing/ and https://www.anthropic.com/pricing#api.
// OpenAI does not bill cache writes separately; should an OpenAI upstream ever report some,
// they cost as much as input.
var defaultPrices = map[string]Price{
	"gpt-4o":       {Input: 2_500_000, Output: 10_000_000, CacheRead: 1_250_000, CacheWrite: 2_500_000},
	"gpt-4o-mini":  {Input: 150_000, Output: 600_000, CacheRead: 75_000, CacheWrite: 150_000},
	"gpt-4.1":      {Input: 2_000_000, Output: 8_000_000, CacheRead: 500_000, CacheWrite: 2_000_000},
	"gpt-4.1-mini": {Input: 400_000, Output: 1_600_000, CacheRead: 100_000, CacheWrite: 400_000},
	"gpt-4.1-nano": {Input: 100_000, Output: 400_000, CacheRead: 25_000, CacheWrite: 100_000},
	"gpt-5":        {Input: 1_250_000, Output: 10_000_000, CacheRead: 125_000, CacheWrite: 1_250_000},
	"gpt-5-mini":   {Input: 250_000, Output: 2_000_000, CacheRead: 25_000, CacheWrite: 250_000},
	"gpt-5-nano":   {Input: 50_000, Output: 400_000, CacheRead: 5_000, CacheWrite: 50_000},
	"o3":           {Input: 2_000_000, Output: 8_000_000, CacheRead: 500_000, CacheWrite: 2_000_000},
	"o4-mini":      {Input: 1_100_000, Output: 4_400_000, CacheRead: 275_000, CacheWrite: 1_100_000},

	"claude-opus-4":     {Input: 15_000_000, Output: 75_000_000, CacheRead: 1_500_000, CacheWrite: 18_750_000},
	"claude-opus-4-5":   {Input: 5_000_000, Output: 25_000_000, CacheRead: 500_000, CacheWrite: 6_250_000},
	"claude-sonnet-4":   {Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000},
	"claude-3-7-sonnet": {Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000},
	"claude-3-5-sonnet": {Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000},
	"claude-3-5-haiku":  {Input: 800_000, Output: 4_000_000, CacheRead: 80_000, CacheWrite: 1_000_000},
	"claude-haiku-4-5":  {Input: 1_000_000, Output: 5_000_000, CacheRead: 100_000, CacheWrite: 1_250_000},
}

// LookupPrice finds the price of model (case-insensitive): an exact key, else the longest
// key that is a prefix of it.
func LookupPrice(model string) (Price, bool) {
	m := strings.ToLower(strings.TrimSpace(model))
	if m == "" {
		return Price{}, false
	}
	if p, ok := defaultPrices[m]; ok {
		return p, true
	}
	best := ""
	for k := range defaultPrices {
		if len(k) > len(best) && strings.HasPrefix(m, k) {
			best = k
		}
	}
	if best == "" {
		return Price{}, false
	}
	return defaultPrices[best], true
}

// PriceFor prices a request by the model sent upstream, falling back to the model the
// client asked for when the upstream model is empty or unknown. It reports which model
// name priced it ("" when neither is known).
func PriceFor(upstreamModel, model string) (Price, string, bool) {
	if upstreamModel != "" {
		if p, ok := LookupPrice(upstreamModel); ok {
			return p, upstreamModel, true
		}
	}
	if p, ok := LookupPrice(model); ok {
		return p, model, true
	}
	return Price{}, "", false
}
