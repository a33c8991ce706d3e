package admission

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Model fallbacks per group (docs/design.md, "Model fallbacks"). A group's
// model_fallbacks name, per requested model or "*", the models to serve instead, in order,
// on three occasions: the upstream refused the prompt as too long (context_length_exceeded,
// a re-admission), no account serves the model (model_not_found: none of the group maps it,
// or the ones that do answered "model not found"), and no account is left for it
// (exhausted). Positions in a list count from the model being served: the next fallback is
// the one after it, so a chain never loops.

// errorClassContextLength is the plugin's class of a context-length 400 it failed over
// (contract A): it marks nothing, and the failed account may serve the next model.
const errorClassContextLength = "context_length_exceeded"

// fallbackLists are one entry of a group's model_fallbacks.
type fallbackLists struct {
	contextLength, notFound, exhausted []string
}

// fallbackRules are a group's compiled model_fallbacks, keyed by requested model or "*".
type fallbackRules map[string]fallbackLists

// compileFallbacks reads the group's model_fallbacks (raw JSON, "" = none). The admin API
// validated it; what it cannot read is an error of the key's cache fill.
func compileFallbacks(groupID int64, raw string) (fallbackRules, error) {
	if raw == "" {
		return nil, nil
	}
	var in map[string]store.ModelFallback
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		return nil, fmt.Errorf("reading model fallbacks of group %d: %w", groupID, err)
	}
	out := make(fallbackRules, len(in))
	for m, f := range in {
		out[m] = fallbackLists{contextLength: f.ContextLengthExceeded, notFound: f.ModelNotFound, exhausted: f.Exhausted}
	}
	return out, nil
}

// lists is the entry of requested: its own, else "*"'s.
func (r fallbackRules) lists(requested string) fallbackLists {
	if l, ok := r[requested]; ok {
		return l
	}
	return r["*"]
}

// after is what list offers once current is served: the models after current's position,
// or the whole list when current is not in it, without requested and current themselves.
func after(list []string, current, requested string) []string {
	start := 0
	for i, m := range list {
		if m == current {
			start = i + 1
			break
		}
	}
	var out []string
	for _, m := range list[start:] {
		if m != current && m != requested {
			out = append(out, m)
		}
	}
	return out
}

// knows reports whether model is one that requested may be served by: itself or a model of
// its lists. A re-admission's served_model outside them is the plugin's mistake or a changed
// configuration, and the request continues as requested.
func (r fallbackRules) knows(requested, model string) bool {
	if model == requested {
		return true
	}
	l := r.lists(requested)
	for _, list := range [][]string{l.contextLength, l.notFound, l.exhausted} {
		for _, m := range list {
			if m == model {
				return true
			}
		}
	}
	return false
}

// contextFallback reports whether a context-length refusal of served should be failed over:
// requested's context_length_exceeded list has a model left after it.
func (r fallbackRules) contextFallback(requested, served string) bool {
	return len(after(r.lists(requested).contextLength, served, requested)) > 0
}

// choice is the model an admission serves, with its candidates.
type choice struct {
	model  string // client namespace: the requested model or a fallback
	routed string // model through the group's mapping
	cands  []candidate
}

// chooseModel picks the model to serve and lists its candidates. current is the model the
// request is being served (the requested one, or a fallback on a re-admission); failedClass
// the failed attempt's class ("" on a first admission). A context-length failure goes to the
// next model of the context_length_exceeded list, its failed account not excluded; otherwise
// current is tried, and when no account of the group serves it (or its accounts answered
// "model not found") the model_not_found list, when none is usable now the exhausted list.
// The refusal is current's when no fallback has a candidate either.
func (s *Admitter) chooseModel(ctx context.Context, key store.KeyAuth, rules groupRules, requested, current,
	failedClass string, failedAccount int64, exclude map[int64]bool) (choice, *Rejection, error) {
	lists := rules.fallbacks.lists(requested)
	if failedClass == errorClassContextLength {
		keep := make(map[int64]bool, len(exclude))
		for id := range exclude {
			if id != failedAccount {
				keep[id] = true // the account that refused the prompt may serve a larger model
			}
		}
		c, ok, err := s.firstServable(ctx, key, rules, after(lists.contextLength, current, requested), keep)
		if err != nil || ok {
			return c, nil, err
		}
		return choice{}, rejectNoAccount, nil
	}
	routed, named := rules.route(current)
	// A fallback being served was named by the operator.
	cands, rej, err := s.candidates(ctx, key, current, routed, named || current != requested, exclude)
	if err != nil || rej == nil {
		return choice{model: current, routed: routed, cands: cands}, nil, err
	}
	var next []string
	switch {
	case rej == rejectNoAccount && failedClass == health.ErrorClassModelNotFound:
		next = after(lists.notFound, current, requested)
	case rej == rejectNoAccount:
		next = after(lists.exhausted, current, requested)
	default: // model_not_found: no account of the group maps it
		next = after(lists.notFound, current, requested)
	}
	c, ok, err := s.firstServable(ctx, key, rules, next, exclude)
	if err != nil || ok {
		return c, nil, err
	}
	if rej.reason == ReasonModelNotFound {
		// No fallback either: the 404 names the models the key can use (servable.go).
		rej, err = s.modelNotFound(ctx, key, rules, current)
	}
	return choice{}, rej, err
}

// firstServable is the first of models with a candidate now; ok is false when none has.
func (s *Admitter) firstServable(ctx context.Context, key store.KeyAuth, rules groupRules, models []string,
	exclude map[int64]bool) (choice, bool, error) {
	for _, m := range models {
		routed, _ := rules.route(m)
		cands, rej, err := s.candidates(ctx, key, m, routed, true, exclude) // the operator named m
		if err != nil {
			return choice{}, false, err
		}
		if rej == nil {
			return choice{model: m, routed: routed, cands: cands}, true, nil
		}
	}
	return choice{}, false, nil
}
