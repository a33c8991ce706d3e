package usage

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

var fuzzFormats = []string{FormatResponses, FormatChat, FormatAnthropic}

// FuzzNormalize: a report's usage object (gjson) is read as encoding/json reads it: a usage
// that decodes as a JSON object, or null, or nothing, is never refused, anything else is
// ErrInvalidUsage; every bucket is non-negative and input never goes below zero when the
// cached count exceeds it.
func FuzzNormalize(f *testing.F) {
	f.Add([]byte(`{"input_tokens":10,"input_tokens_details":{"cached_tokens":20},"output_tokens":5}`), uint8(0))
	f.Add([]byte(`{"prompt_tokens":1e30,"completion_tokens":-4,"prompt_tokens_details":{"cached_tokens":"7"}}`), uint8(1))
	f.Add([]byte(`{"input_tokens":9223372036854775807,"cache_read_input_tokens":1.5}`), uint8(2))
	f.Add([]byte("{\"input_tokens\":1,\"x\":\"\xff\"}"), uint8(2))
	f.Add([]byte(` null `), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, sel uint8) {
		if len(raw) > 1<<20 {
			return
		}
		format := fuzzFormats[int(sel)%len(fuzzFormats)]
		tok, err := Normalize(format, raw)
		// Normalize trims Unicode white space (bytes.TrimSpace) before reading; in a report
		// the usage is a json.RawMessage, which has none.
		trimmed := strings.TrimSpace(string(raw))
		var obj map[string]json.RawMessage
		jerr := json.Unmarshal([]byte(trimmed), &obj)
		if jerr != nil && strings.Contains(jerr.Error(), "exceeded max depth") {
			// gjson has no depth limit; encoding/json stops at 10 000 levels, so such a
			// usage never reaches Normalize: the report body holding it is refused whole.
			return
		}
		isObject := jerr == nil && obj != nil
		emptyOrNull := trimmed == "" || trimmed == "null"
		if err != nil {
			if !errors.Is(err, ErrInvalidUsage) {
				t.Fatalf("error %v", err)
			}
			if isObject {
				t.Fatalf("refused a usage object encoding/json reads: %q", raw)
			}
			return
		}
		if !isObject && !emptyOrNull {
			t.Fatalf("accepted %q, which is not a JSON object", raw)
		}
		if tok.Input < 0 || tok.Output < 0 || tok.CacheRead < 0 || tok.CacheCreation < 0 || tok.Reasoning < 0 {
			t.Fatalf("negative bucket %+v", tok)
		}
	})
}

// FuzzNormalizeCounts: the counts of a usage object come out in the right buckets: OpenAI's
// cached tokens leave the input bucket for cache reads (input never negative), Anthropic's
// input is already exclusive; negative counts are 0.
func FuzzNormalizeCounts(f *testing.F) {
	f.Add(int64(100), int64(30), int64(20), int64(5), int64(1))
	f.Add(int64(1), int64(-1), int64(1<<62), int64(-1<<63), int64(1<<63-1))
	f.Fuzz(func(t *testing.T, in, out, cached, created, reasoning int64) {
		n := func(v int64) string { return strconv.FormatInt(v, 10) }
		nn := func(v int64) int64 { return max(v, 0) }
		resp := `{"input_tokens":` + n(in) + `,"output_tokens":` + n(out) + `,"input_tokens_details":{"cached_tokens":` + n(cached) +
			`},"output_tokens_details":{"reasoning_tokens":` + n(reasoning) + `}}`
		chat := `{"prompt_tokens":` + n(in) + `,"completion_tokens":` + n(out) + `,"prompt_tokens_details":{"cached_tokens":` + n(cached) +
			`},"completion_tokens_details":{"reasoning_tokens":` + n(reasoning) + `}}`
		anth := `{"input_tokens":` + n(in) + `,"output_tokens":` + n(out) + `,"cache_read_input_tokens":` + n(cached) +
			`,"cache_creation_input_tokens":` + n(created) + `}`
		openAIIn := nn(in) - nn(cached)
		if openAIIn < 0 {
			openAIIn = 0
		}
		for _, c := range []struct {
			format, raw string
			want        Tokens
		}{
			{FormatResponses, resp, Tokens{Input: openAIIn, Output: nn(out), CacheRead: nn(cached), Reasoning: nn(reasoning)}},
			{FormatChat, chat, Tokens{Input: openAIIn, Output: nn(out), CacheRead: nn(cached), Reasoning: nn(reasoning)}},
			{FormatAnthropic, anth, Tokens{Input: nn(in), Output: nn(out), CacheRead: nn(cached), CacheCreation: nn(created)}},
		} {
			got, err := Normalize(c.format, []byte(c.raw))
			if err != nil || got != c.want {
				t.Fatalf("%s %s: %+v, %v; want %+v", c.format, c.raw, got, err, c.want)
			}
		}
	})
}

// FuzzPricePattern: an accepted price key is lower case, trimmed, at most
// MaxModelPatternLen bytes, without white space or control characters, with a '*' only at
// its end, and normalising it again changes nothing; a table holding it prices the model it
// names (and, for a prefix key, any model starting with the prefix), in any case.
func FuzzPricePattern(f *testing.F) {
	for _, s := range []string{"gpt-5", " GPT-4o* ", "*", "a*b", "claude-\u212a", "x\x00", "\xff*", strings.Repeat("a", 129)} {
		f.Add(s, "-suffix")
	}
	f.Fuzz(func(t *testing.T, pattern, suffix string) {
		if len(pattern)+len(suffix) > 4096 {
			return
		}
		key, err := NormalizePattern(pattern)
		if err != nil {
			return
		}
		if again, err := NormalizePattern(key); err != nil || again != key {
			t.Fatalf("NormalizePattern(%q) = %q, again %q, %v", pattern, key, again, err)
		}
		if key != strings.ToLower(key) || key != strings.TrimSpace(key) || len(key) > MaxModelPatternLen ||
			strings.Contains(strings.TrimSuffix(key, "*"), "*") || strings.ContainsAny(key, " \t\r\n\x00\x7f") {
			t.Fatalf("key %q accepted", key)
		}
		price := Price{Input: 1, Output: 2, CacheRead: 3, CacheWrite: 4}
		table, err := NewPriceTable(map[string]Price{pattern: price})
		if err != nil {
			t.Fatalf("NewPriceTable refuses the accepted %q: %v", pattern, err)
		}
		model := key
		if prefix, ok := strings.CutSuffix(key, "*"); ok {
			model = prefix + strings.ToLower(strings.TrimSpace(suffix))
			if strings.TrimSpace(model) != model || model == "" {
				return // a prefix key for a model name that lookups trim
			}
		}
		if p, matched, ok := table.Lookup(strings.ToUpper(model)); strings.ToLower(strings.ToUpper(model)) == model &&
			(!ok || p != price || matched != key) {
			t.Fatalf("Lookup(%q) in {%q} = %v %q %v", strings.ToUpper(model), key, p, matched, ok)
		}
	})
}

// FuzzCost: a charge is the sum of its buckets (saturating, never negative, never wrapping)
// and never falls when a bucket's tokens grow.
func FuzzCost(f *testing.F) {
	f.Add(int64(1000), int64(500), int64(0), int64(0), int64(2_500_000), int64(1_000_000))
	f.Add(int64(1<<62), int64(1<<62), int64(1<<62), int64(1<<62), int64(1<<62), int64(1<<62))
	f.Add(int64(-1), int64(5), int64(-1<<63), int64(7), int64(3), int64(-1))
	f.Fuzz(func(t *testing.T, in, out, read, write, price, rate int64) {
		tok := Tokens{Input: in, Output: out, CacheRead: read, CacheCreation: write}
		p := Price{Input: price, Output: price, CacheRead: price / 2, CacheWrite: price}
		b := CostBreakdown(tok, p, rate)
		if b.Input < 0 || b.Output < 0 || b.CacheRead < 0 || b.CacheWrite < 0 || b.Total < 0 {
			t.Fatalf("negative charge %+v", b)
		}
		if b.Total != saturatingSum(b.Input, b.Output, b.CacheRead, b.CacheWrite) {
			t.Fatalf("total %d is not the sum of %+v", b.Total, b)
		}
		if in < 1<<62 {
			more := tok
			more.Input = max(in, 0) + 1
			if c := Cost(more, p, rate); c < b.Total {
				t.Fatalf("one more input token costs less: %d < %d", c, b.Total)
			}
		}
	})
}
