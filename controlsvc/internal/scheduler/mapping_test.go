package scheduler

import "testing"

func TestMappingResolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		mapping      string
		model        string
		wantUpstream string
		wantOK       bool
	}{
		{name: "empty mapping serves all", mapping: `{}`, model: "anything", wantOK: true},
		{name: "null mapping serves all", mapping: `null`, model: "gpt-4o", wantOK: true},
		{name: "exact rewrite", mapping: `{"gpt-4o":"gpt-4o-2024-08-06"}`, model: "gpt-4o", wantUpstream: "gpt-4o-2024-08-06", wantOK: true},
		{name: "exact identity is unchanged", mapping: `{"gpt-4o":"gpt-4o"}`, model: "gpt-4o", wantOK: true},
		{name: "exact empty target is unchanged", mapping: `{"gpt-4o":""}`, model: "gpt-4o", wantOK: true},
		{name: "not in mapping", mapping: `{"gpt-4o":"gpt-4o"}`, model: "gpt-4o-mini", wantOK: false},
		{name: "wildcard rewrite", mapping: `{"claude-*":"claude-sonnet-4-20250514"}`, model: "claude-3-5-haiku", wantUpstream: "claude-sonnet-4-20250514", wantOK: true},
		{name: "wildcard pass-through", mapping: `{"gpt-*":"gpt-*"}`, model: "gpt-5", wantOK: true},
		{name: "wildcard matches its bare prefix", mapping: `{"gpt-4o*":"x"}`, model: "gpt-4o", wantUpstream: "x", wantOK: true},
		{name: "longest prefix wins", mapping: `{"gpt-*":"short","gpt-4o*":"long"}`, model: "gpt-4o-mini", wantUpstream: "long", wantOK: true},
		{name: "shorter prefix still serves others", mapping: `{"gpt-*":"short","gpt-4o*":"long"}`, model: "gpt-5", wantUpstream: "short", wantOK: true},
		{name: "exact beats wildcard", mapping: `{"gpt-4o*":"wild","gpt-4o-mini":"exact"}`, model: "gpt-4o-mini", wantUpstream: "exact", wantOK: true},
		{name: "star alone serves all", mapping: `{"*":"gpt-4o"}`, model: "o3", wantUpstream: "gpt-4o", wantOK: true},
		{name: "case-sensitive", mapping: `{"gpt-4o":"x"}`, model: "GPT-4o", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMapping([]byte(tt.mapping))
			if err != nil {
				t.Fatalf("ParseMapping: %v", err)
			}
			up, ok := m.Resolve(tt.model)
			if up != tt.wantUpstream || ok != tt.wantOK {
				t.Errorf("Resolve(%q) = %q, %v; want %q, %v", tt.model, up, ok, tt.wantUpstream, tt.wantOK)
			}
		})
	}
}

func TestParseMappingRejectsNonStringTargets(t *testing.T) {
	t.Parallel()
	for _, give := range []string{`{"gpt-4o":1}`, `["gpt-4o"]`, `{`} {
		if _, err := ParseMapping([]byte(give)); err == nil {
			t.Errorf("ParseMapping(%s) = nil error, want an error", give)
		}
	}
}

// A group's mapping with restrict_models allows only what a rule names: unlike Resolve, the
// empty mapping names nothing.
func TestMappingLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		mapping      string
		model        string
		wantUpstream string
		wantNamed    bool
	}{
		{name: "empty names nothing", mapping: `{}`, model: "claude-sonnet-4", wantNamed: false},
		{name: "exact rewrite", mapping: `{"sonnet":"claude-sonnet-4-5"}`, model: "sonnet", wantUpstream: "claude-sonnet-4-5", wantNamed: true},
		{name: "exact identity", mapping: `{"claude-opus-4":"claude-opus-4"}`, model: "claude-opus-4", wantNamed: true},
		{name: "prefix identity", mapping: `{"claude-haiku*":"claude-haiku*"}`, model: "claude-haiku-4-5", wantNamed: true},
		{name: "longest prefix wins", mapping: `{"claude-*":"a","claude-opus*":"b"}`, model: "claude-opus-4-1", wantUpstream: "b", wantNamed: true},
		{name: "not named", mapping: `{"claude-opus*":"b"}`, model: "claude-sonnet-4", wantNamed: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMapping([]byte(tt.mapping))
			if err != nil {
				t.Fatalf("ParseMapping: %v", err)
			}
			up, named := m.Lookup(tt.model)
			if up != tt.wantUpstream || named != tt.wantNamed {
				t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.model, up, named, tt.wantUpstream, tt.wantNamed)
			}
		})
	}
}
