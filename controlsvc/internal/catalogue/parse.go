package catalogue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// MaxEntries bounds one catalogue document (LiteLLM's whole file has a few thousand).
const MaxEntries = 20000

// LiteLLM's field names (model_prices_and_context_window.json); other fields are ignored.
const (
	fieldInput      = "input_cost_per_token"
	fieldOutput     = "output_cost_per_token"
	fieldCacheRead  = "cache_read_input_token_cost"
	fieldCacheWrite = "cache_creation_input_token_cost"
	fieldWrite1h    = "cache_creation_input_token_cost_above_1hr"
	fieldMaxInput   = "max_input_tokens"
	fieldMaxOutput  = "max_output_tokens"
	fieldMaxTokens  = "max_tokens" // LiteLLM's legacy name of the output maximum
	fieldProvider   = "litellm_provider"
)

// sampleSpec is LiteLLM's documentation entry, whose values are prose.
const sampleSpec = "sample_spec"

// tierField matches a long-context price, e.g. input_cost_per_token_above_200k_tokens.
var tierField = regexp.MustCompile(`^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost)_above_(\d+)k_tokens$`)

// ErrEmpty means a document without a single token-priced model.
var ErrEmpty = errors.New("no model has an input_cost_per_token")

// Parse reads a catalogue document: a JSON object of model name to LiteLLM entry. An entry
// without input_cost_per_token (an image or audio model, LiteLLM's sample_spec) is skipped
// and named in skipped; any other malformed entry fails the whole document. Missing prices
// default so that nothing is free by omission: cache read and cache write to the input
// price (OpenAI bills cache writes as input), the 1-hour write to the 5-minute write, a
// tier's prices to the base ones; a missing output price is 0 (embeddings have no output).
func Parse(data []byte) (entries []Entry, skipped []string, err error) {
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("catalogue must be a JSON object of model name to entry: %w", err)
	}
	if len(doc) > MaxEntries {
		return nil, nil, fmt.Errorf("catalogue has %d entries, at most %d are accepted", len(doc), MaxEntries)
	}
	seen := make(map[string]string, len(doc))
	for name, raw := range doc {
		if name == sampleSpec {
			skipped = append(skipped, name)
			continue
		}
		e, ok, err := parseEntry(name, raw)
		if err != nil {
			return nil, nil, fmt.Errorf("model %q: %w", name, err)
		}
		if !ok {
			skipped = append(skipped, name)
			continue
		}
		if other, dup := seen[e.Model]; dup {
			return nil, nil, fmt.Errorf("models %q and %q are the same name", other, name)
		}
		seen[e.Model] = name
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, nil, ErrEmpty
	}
	return entries, skipped, nil
}

func parseEntry(name string, raw json.RawMessage) (Entry, bool, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return Entry{}, false, errors.New("entry must be a JSON object")
	}
	if _, ok := f[fieldInput]; !ok {
		return Entry{}, false, nil
	}
	model, err := usage.NormalizePattern(name)
	if err != nil {
		return Entry{}, false, err
	}
	e := Entry{Model: model}
	p := &e.Price
	if p.Input, err = costField(f, fieldInput, 0); err != nil {
		return Entry{}, false, err
	}
	if p.Output, err = costField(f, fieldOutput, 0); err != nil {
		return Entry{}, false, err
	}
	if p.CacheRead, err = costField(f, fieldCacheRead, p.Input); err != nil {
		return Entry{}, false, err
	}
	if p.CacheWrite, err = costField(f, fieldCacheWrite, p.Input); err != nil {
		return Entry{}, false, err
	}
	if p.CacheWrite1h, err = costField(f, fieldWrite1h, 0); err != nil {
		return Entry{}, false, err
	}
	if p.Long, err = parseTier(f, *p); err != nil {
		return Entry{}, false, err
	}
	if e.MaxInput, err = tokensField(f, fieldMaxInput); err != nil {
		return Entry{}, false, err
	}
	if e.MaxOutput, err = tokensField(f, fieldMaxOutput); err != nil {
		return Entry{}, false, err
	}
	if e.MaxOutput == 0 {
		if e.MaxOutput, err = tokensField(f, fieldMaxTokens); err != nil {
			return Entry{}, false, err
		}
	}
	if v, ok := f[fieldProvider]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &e.Provider); err != nil {
			return Entry{}, false, fmt.Errorf("%s must be a string", fieldProvider)
		}
		e.Provider = strings.ToLower(e.Provider)
	}
	return e, true, nil
}

// parseTier reads the long-context prices; with several thresholds the lowest is kept
// (one tier is all the providers' current models have).
func parseTier(f map[string]json.RawMessage, base usage.Price) (usage.Tier, error) {
	above := int64(0)
	for k := range f {
		m := tierField.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[2], 10, 32)
		if err != nil || n <= 0 {
			return usage.Tier{}, fmt.Errorf("%s: bad threshold", k)
		}
		if above == 0 || n*1000 < above {
			above = n * 1000
		}
	}
	if above == 0 {
		return usage.Tier{}, nil
	}
	suffix := fmt.Sprintf("_above_%dk_tokens", above/1000)
	t := usage.Tier{Above: above}
	var err error
	for _, b := range []struct {
		field string
		def   int64
		dst   *int64
	}{
		{fieldInput, base.Input, &t.Input}, {fieldOutput, base.Output, &t.Output},
		{fieldCacheRead, base.CacheRead, &t.CacheRead}, {fieldCacheWrite, base.CacheWrite, &t.CacheWrite},
	} {
		if *b.dst, err = costField(f, b.field+suffix, b.def); err != nil {
			return usage.Tier{}, err
		}
	}
	return t, nil
}

// perTokenToMicrosPerMillion: USD per token × 10^12 = micro-dollars per million tokens.
var perTokenToMicrosPerMillion = new(big.Rat).SetInt64(1_000_000_000_000)

// costField reads a USD-per-token price as micro-dollars per million tokens, rounded half
// up (LiteLLM writes binary floats such as 8.000000000000001e-07); def when absent or null.
func costField(f map[string]json.RawMessage, name string, def int64) (int64, error) {
	v, ok := f[name]
	if !ok || isNull(v) {
		return def, nil
	}
	r, ok := new(big.Rat).SetString(string(bytes.TrimSpace(v)))
	if !ok {
		return 0, fmt.Errorf("%s must be a number (USD per token)", name)
	}
	if r.Sign() < 0 {
		return 0, fmt.Errorf("%s must not be negative", name)
	}
	r.Mul(r, perTokenToMicrosPerMillion)
	r.Add(r, big.NewRat(1, 2))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() || n.Int64() > maxMicrosPerMillion {
		return 0, fmt.Errorf("%s is too large", name)
	}
	return n.Int64(), nil
}

// maxMicrosPerMillion bounds a price: USD 1 per token.
const maxMicrosPerMillion = 1_000_000_000_000

// tokensField reads a token count; 0 when absent or null.
func tokensField(f map[string]json.RawMessage, name string) (int64, error) {
	v, ok := f[name]
	if !ok || isNull(v) {
		return 0, nil
	}
	n, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
	if err != nil || n < 0 || n > 1e12 || n != float64(int64(n)) {
		return 0, fmt.Errorf("%s must be a whole number of tokens", name)
	}
	return int64(n), nil
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// ParseSpec reads the stored LiteLLM entry of an imported override; ok is false without
// one or when it does not parse.
func ParseSpec(model string, spec []byte) (Entry, bool) {
	if len(spec) == 0 {
		return Entry{}, false
	}
	e, ok, err := parseEntry(model, spec)
	if err != nil || !ok {
		return Entry{}, false
	}
	return e, true
}

// Spec renders e as a LiteLLM entry of the fields Parse reads, prices exact (micro-dollars
// per million tokens as "<n>e-12" USD per token), for storing an imported entry.
func Spec(e Entry) []byte {
	f := map[string]any{fieldInput: perToken(e.Price.Input), fieldOutput: perToken(e.Price.Output),
		fieldCacheRead: perToken(e.Price.CacheRead), fieldCacheWrite: perToken(e.Price.CacheWrite)}
	if e.Price.CacheWrite1h > 0 {
		f[fieldWrite1h] = perToken(e.Price.CacheWrite1h)
	}
	if l := e.Price.Long; l.Above > 0 {
		suffix := fmt.Sprintf("_above_%dk_tokens", l.Above/1000)
		f[fieldInput+suffix], f[fieldOutput+suffix] = perToken(l.Input), perToken(l.Output)
		f[fieldCacheRead+suffix], f[fieldCacheWrite+suffix] = perToken(l.CacheRead), perToken(l.CacheWrite)
	}
	if e.MaxInput > 0 {
		f[fieldMaxInput] = e.MaxInput
	}
	if e.MaxOutput > 0 {
		f[fieldMaxOutput] = e.MaxOutput
	}
	if e.Provider != "" {
		f[fieldProvider] = e.Provider
	}
	b, _ := json.Marshal(f) // plain values only
	return b
}

func perToken(microsPerMillion int64) json.Number {
	return json.Number(strconv.FormatInt(microsPerMillion, 10) + "e-12")
}
