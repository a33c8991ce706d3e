// Package scheduler holds the pure parts of account selection: which models an account
// serves (its model mapping) and the order in which candidates are tried.
package scheduler

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Mapping is an account's compiled model mapping: {"requested": "upstream"}, where a key
// ending in "*" matches by prefix. An empty mapping serves every model unchanged.
type Mapping struct {
	exact    map[string]string
	prefixes []prefixRule // longest prefix first
}

type prefixRule struct {
	prefix, upstream string
}

// ParseMapping compiles the JSON object stored in accounts.model_mapping. Null or empty
// input is the empty mapping.
func ParseMapping(raw []byte) (Mapping, error) {
	var m map[string]string
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			return Mapping{}, fmt.Errorf("parsing model mapping: %w", err)
		}
	}
	return NewMapping(m), nil
}

// NewMapping compiles a mapping.
func NewMapping(m map[string]string) Mapping {
	out := Mapping{exact: make(map[string]string, len(m))}
	for k, v := range m {
		if p, ok := strings.CutSuffix(k, "*"); ok {
			out.prefixes = append(out.prefixes, prefixRule{prefix: p, upstream: v})
			continue
		}
		out.exact[k] = v
	}
	sort.Slice(out.prefixes, func(i, j int) bool {
		a, b := out.prefixes[i].prefix, out.prefixes[j].prefix
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
	return out
}

// Empty reports whether the mapping has no rules (every model is served).
func (m Mapping) Empty() bool { return len(m.exact) == 0 && len(m.prefixes) == 0 }

// ExactKeys are the mapping's model names: its keys without the wildcards, unordered.
func (m Mapping) ExactKeys() []string {
	out := make([]string, 0, len(m.exact))
	for k := range m.exact {
		out = append(out, k)
	}
	return out
}

// Resolve reports whether the account serves model and, if so, the model to send upstream:
// "" when the request goes upstream unchanged. An exact key beats any prefix; among
// prefixes the longest wins. A rule whose target is empty, equal to the requested model or
// itself a wildcard ("gpt-*": "gpt-*") passes the model through unchanged.
func (m Mapping) Resolve(model string) (upstream string, ok bool) {
	if m.Empty() {
		return "", true
	}
	return m.Lookup(model)
}

// Lookup is Resolve without the empty mapping's "serve everything": named reports whether
// a rule of the mapping names model (exactly or by prefix), which is what a group with
// restrict_models allows (docs/design.md, "Group model rules and dispatch").
func (m Mapping) Lookup(model string) (upstream string, named bool) {
	if v, ok := m.exact[model]; ok {
		return rewrite(model, v), true
	}
	for _, r := range m.prefixes {
		if strings.HasPrefix(model, r.prefix) {
			return rewrite(model, r.upstream), true
		}
	}
	return "", false
}

func rewrite(model, target string) string {
	if target == "" || target == model || strings.HasSuffix(target, "*") {
		return ""
	}
	return target
}
