package catalogue

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// cliDefaultModels are the models the pinned CLIs send by default, and their fast/small
// models, with where that was read. Each must be priced by the shipped catalogue.
var cliDefaultModels = []struct{ model, source string }{
	// Codex CLI: codex-rs/core/src/openai_models/model_presets.rs (presets gpt-5.2-codex,
	// the default, gpt-5.1-codex-max, gpt-5.1-codex-mini); codex-rs/app-server/src/models.rs
	// (gpt-5-codex, gpt-5); the Codex rate card (gpt-5.5, gpt-5.4, gpt-5.4-mini, gpt-5.3-codex).
	{"gpt-5.5", "Codex rate card"}, {"gpt-5.4", "Codex rate card"}, {"gpt-5.4-mini", "Codex rate card"},
	{"gpt-5.3-codex", "Codex rate card"}, {"gpt-5.2-codex", "model_presets.rs"}, {"gpt-5.2", "model_presets.rs"},
	{"gpt-5.1-codex-max", "model_presets.rs"}, {"gpt-5.1-codex-mini", "model_presets.rs"},
	{"gpt-5.1-codex", "model_presets.rs"}, {"gpt-5-codex", "app-server/src/models.rs"}, {"gpt-5", "app-server/src/models.rs"},
	{"codex-mini-latest", "codex CLI (TypeScript) default"},
	// What the pinned CLIs (scripts/clis.env) send by default, seen on the wire by e2e/clis:
	// Codex 0.171.0 gpt-6.2-sol, Claude Code 2.1.332 claude-opus-5-5.
	{"gpt-6.2-sol", "Codex 0.171.0 default (e2e/clis)"}, {"claude-opus-5-5", "Claude Code 2.1.332 default (e2e/clis)"},
	// Claude Code: its model aliases opus / sonnet / haiku and ANTHROPIC_SMALL_FAST_MODEL
	// (claude-haiku-4-5-20251001), as listed by Claude Code's model docs and guides.
	{"claude-opus-4-8", "Claude Code opus alias"}, {"claude-opus-4-7", "Claude Code opus alias"},
	{"claude-opus-4-6", "Claude Code opus alias"}, {"claude-sonnet-5", "Claude Code default since 2026-07"},
	{"claude-sonnet-4-6", "Claude Code sonnet alias"}, {"claude-sonnet-4-5-20250929", "Claude Code sonnet"},
	{"claude-haiku-4-5-20251001", "Claude Code small/fast model"}, {"claude-haiku-4-5", "Claude Code haiku alias"},
	{"claude-opus-4-5-20251101", "Claude Code opus (4.5)"},
}

func TestCLIDefaultModelsArePriced(t *testing.T) {
	t.Parallel()
	for _, m := range cliDefaultModels {
		e, ok := Shipped().Lookup(m.model)
		if !ok {
			t.Errorf("%s (%s) is not in the catalogue", m.model, m.source)
			continue
		}
		if e.Price.Input <= 0 || e.Price.Output <= 0 || e.Price.CacheRead <= 0 || e.MaxOutput <= 0 || e.Platform() == "" {
			t.Errorf("%s (%s) is incomplete: %+v", m.model, m.source, e)
		}
	}
}

// TestShippedCatalogue: exact names only, every entry with its source and every price set.
func TestShippedCatalogue(t *testing.T) {
	t.Parallel()
	var raw map[string]map[string]any
	if err := json.Unmarshal(shippedJSON, &raw); err != nil {
		t.Fatal(err)
	}
	entries := Shipped().Entries()
	if len(entries) != len(raw) {
		t.Fatalf("%d entries parsed of %d", len(entries), len(raw))
	}
	for _, e := range entries {
		if strings.Contains(e.Model, "*") {
			t.Errorf("shipped wildcard %q", e.Model)
		}
		if src, _ := raw[e.Model]["source"].(string); !strings.HasPrefix(src, "https://") {
			t.Errorf("%s has no source URL", e.Model)
		}
		p := e.Price
		if p.Input <= 0 || p.Output <= 0 || p.CacheRead <= 0 || p.CacheWrite < p.Input || e.MaxInput <= 0 || e.MaxOutput <= 0 {
			t.Errorf("%s: %+v", e.Model, e)
		}
		if e.Platform() == PlatformAnthropic && p.CacheWrite1h <= p.CacheWrite {
			t.Errorf("%s: 1-hour cache write %d not above the 5-minute one %d", e.Model, p.CacheWrite1h, p.CacheWrite)
		}
	}
}

func TestLookups(t *testing.T) {
	t.Parallel()
	c := Shipped()
	tests := []struct {
		name      string
		model     string
		wantOK    bool
		wantInput int64
		wantMax   int64
		wantLong  int64
	}{
		{name: "exact", model: "claude-opus-4-8", wantOK: true, wantInput: 5_000_000, wantMax: 128000},
		{name: "case-insensitive", model: "GPT-5.2-Codex", wantOK: true, wantInput: 1_750_000, wantMax: 128000},
		{name: "dated alias", model: "claude-haiku-4-5-20251001", wantOK: true, wantInput: 1_000_000, wantMax: 64000},
		{name: "long-context tier", model: "claude-sonnet-4-5", wantOK: true, wantInput: 3_000_000, wantMax: 64000, wantLong: 200_000},
		{name: "no prefix matching", model: "claude-opus-4-8-20990101"},
		{name: "unknown", model: "llama-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, ok := c.Lookup(tt.model)
			if ok != tt.wantOK || e.Price.Input != tt.wantInput || e.MaxOutput != tt.wantMax || e.Price.Long.Above != tt.wantLong {
				t.Errorf("Lookup(%q) = %+v, %v", tt.model, e, ok)
			}
			max, ok := c.MaxOutput(tt.model)
			if ok != tt.wantOK || max != tt.wantMax {
				t.Errorf("MaxOutput(%q) = %d, %v", tt.model, max, ok)
			}
		})
	}
}

func TestModelsByPlatform(t *testing.T) {
	t.Parallel()
	anthropic, openai := Shipped().Models(PlatformAnthropic), Shipped().Models(PlatformOpenAI)
	if !contains(anthropic, "claude-opus-4-8") || contains(anthropic, "gpt-5") {
		t.Errorf("anthropic models %v", anthropic)
	}
	if !contains(openai, "gpt-5.2-codex") || contains(openai, "claude-opus-4-8") {
		t.Errorf("openai models %v", openai)
	}
	if got := Shipped().Models("gemini"); len(got) != 0 {
		t.Errorf("gemini models %v", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestLongContextCost: Sonnet 4.5 above 200k prompt tokens is priced by the tier for the
// whole request; at 200k it is not.
func TestLongContextCost(t *testing.T) {
	t.Parallel()
	e, _ := Shipped().Lookup("claude-sonnet-4-5")
	tests := []struct {
		name string
		t    usage.Tokens
		want int64
	}{
		{name: "at the threshold", t: usage.Tokens{Input: 200_000, Output: 1000}, want: 600_000 + 15_000},
		{name: "above, by cache reads", t: usage.Tokens{Input: 100_000, CacheRead: 100_001, Output: 1000},
			want: 600_000 + 60_001 + 22_500},
		{name: "1-hour cache writes", t: usage.Tokens{Input: 1000, CacheCreation: 3000, CacheCreation1h: 1000, Output: 0},
			want: 3000 + 2*3750 + 6000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := usage.Cost(tt.t, e.Price, usage.RateUnit); got != tt.want {
				t.Errorf("cost = %d micros, want %d", got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	valid := `{"sample_spec":{"max_tokens":"LEGACY","input_cost_per_token":0.0},
	  "my-model":{"input_cost_per_token":2e-06,"output_cost_per_token":8.000000000000001e-06,"max_output_tokens":32768,
	    "litellm_provider":"openai","unknown_field":{"x":1}},
	  "dall-e-3":{"output_cost_per_pixel":1e-07},
	  "Big-Model":{"input_cost_per_token":3e-06,"output_cost_per_token":1.5e-05,"cache_read_input_token_cost":3e-07,
	    "cache_creation_input_token_cost":3.75e-06,"cache_creation_input_token_cost_above_1hr":6e-06,
	    "input_cost_per_token_above_200k_tokens":6e-06,"output_cost_per_token_above_200k_tokens":2.25e-05,
	    "max_tokens":64000,"max_input_tokens":1000000,"litellm_provider":"anthropic"}}`
	entries, skipped, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || sortedJoin(skipped) != "dall-e-3,sample_spec" {
		t.Fatalf("entries %+v, skipped %v", entries, skipped)
	}
	c := New(entries)
	my, _ := c.Lookup("my-model")
	if my.Price != (usage.Price{Input: 2_000_000, Output: 8_000_000, CacheRead: 2_000_000, CacheWrite: 2_000_000}) || my.MaxOutput != 32768 {
		t.Errorf("my-model = %+v (cache prices default to input)", my)
	}
	big, _ := c.Lookup("big-model")
	want := usage.Price{Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000, CacheWrite1h: 6_000_000,
		Long: usage.Tier{Above: 200_000, Input: 6_000_000, Output: 22_500_000, CacheRead: 300_000, CacheWrite: 3_750_000}}
	if big.Price != want || big.MaxOutput != 64000 || big.MaxInput != 1_000_000 || big.Platform() != PlatformAnthropic {
		t.Errorf("big-model = %+v", big)
	}

	for name, doc := range map[string]string{
		"not an object":     `[1]`,
		"entry not object":  `{"m":1}`,
		"string price":      `{"ok":{"input_cost_per_token":1e-06},"m":{"input_cost_per_token":"0.000001"}}`,
		"negative price":    `{"m":{"input_cost_per_token":-1e-06}}`,
		"fractional tokens": `{"m":{"input_cost_per_token":1e-06,"max_output_tokens":1.5}}`,
		"bad key":           `{"a*b":{"input_cost_per_token":1e-06}}`,
		"same name twice":   `{"M":{"input_cost_per_token":1e-06},"m":{"input_cost_per_token":1e-06}}`,
		"nothing priced":    `{"dall-e-3":{"output_cost_per_pixel":1e-07}}`,
		"provider a number": `{"m":{"input_cost_per_token":1e-06,"litellm_provider":7}}`,
	} {
		if _, _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	if _, _, err := Parse([]byte(`{"dall-e-3":{}}`)); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty catalogue: %v", err)
	}
	var many bytes.Buffer
	many.WriteString("{")
	for i := 0; i <= MaxEntries; i++ {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"m-` + strconv.Itoa(i) + `":{}`)
	}
	many.WriteString("}")
	if _, _, err := Parse(many.Bytes()); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized catalogue: %v", err)
	}
}

func sortedJoin(s []string) string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return strings.Join(out, ",")
}

// TestCurrentSeesImports: SetCurrent replaces what the package functions answer.
func TestCurrentSeesImports(t *testing.T) {
	c := New(append(Shipped().Entries(), Entry{Model: "new-claude", Provider: "anthropic", MaxOutput: 99, Price: usage.Price{Input: 1}}))
	SetCurrent(c)
	t.Cleanup(func() { SetCurrent(Shipped()) })
	if n, ok := MaxOutput("new-claude"); !ok || n != 99 {
		t.Errorf("MaxOutput = %d, %v", n, ok)
	}
	if !contains(Models(PlatformAnthropic), "new-claude") {
		t.Error("Models misses the import")
	}
}

// The default models of the CLI versions pinned in scripts/clis.env are priced: bumping a
// pin without pricing its new default fails here, before the CLI runs do.
func TestPinnedCLIDefaultsArePriced(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "scripts", "clis.env"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		name, model, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || !strings.HasSuffix(name, "_DEFAULT_MODEL") {
			continue
		}
		n++
		e, ok := Shipped().Lookup(model)
		if !ok || e.Price.Input <= 0 || e.Price.Output <= 0 || e.MaxOutput <= 0 {
			t.Errorf("%s=%s is not priced by the shipped catalogue (%+v)", name, model, e)
		}
	}
	if n != 2 {
		t.Fatalf("scripts/clis.env names %d default models, want 2 (Codex and Claude Code)", n)
	}
}
