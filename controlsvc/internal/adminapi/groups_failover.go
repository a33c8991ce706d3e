package adminapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// A group's failover settings (docs/design.md, "Health model" and "Model
// fallbacks"): the non-stream header deadline, hedging, the circuit breakers of its
// accounts, and the models tried when the requested one cannot serve.

// Bounds of model_fallbacks: a handful of models per cause is what anyone configures, and
// every admission of the group reads the compiled rules.
const (
	maxFallbackEntries = 100
	maxFallbackModels  = 8
)

// groupFailoverView shows a group's failover settings; null = the gateway's default.
type groupFailoverView struct {
	ResponseHeaderTimeoutMs *int64                         `json:"response_header_timeout_ms"`
	HedgeAfterMs            *int64                         `json:"hedge_after_ms"`
	BreakerThreshold        *int64                         `json:"breaker_threshold"`
	BreakerWindowMs         *int64                         `json:"breaker_window_ms"`
	BreakerCooldownMs       *int64                         `json:"breaker_cooldown_ms"`
	ModelFallbacks          map[string]store.ModelFallback `json:"model_fallbacks"`
}

func newGroupFailoverView(f store.GroupFailover) groupFailoverView {
	fb := f.ModelFallbacks
	if fb == nil {
		fb = map[string]store.ModelFallback{}
	}
	return groupFailoverView{
		ResponseHeaderTimeoutMs: f.ResponseHeaderTimeoutMs, HedgeAfterMs: f.HedgeAfterMs,
		BreakerThreshold: f.BreakerThreshold, BreakerWindowMs: f.BreakerWindowMs, BreakerCooldownMs: f.BreakerCooldownMs,
		ModelFallbacks: fb,
	}
}

// groupFailoverInput holds the failover fields of POST and PATCH /groups.
type groupFailoverInput struct {
	ResponseHeaderTimeoutMs nullable `json:"response_header_timeout_ms"`
	HedgeAfterMs            nullable `json:"hedge_after_ms"`
	BreakerThreshold        nullable `json:"breaker_threshold"`
	BreakerWindowMs         nullable `json:"breaker_window_ms"`
	BreakerCooldownMs       nullable `json:"breaker_cooldown_ms"`
	ModelFallbacks          nullable `json:"model_fallbacks"`
}

// failoverPatch validates the failover fields into p.
func (in *groupFailoverInput) failoverPatch(p *store.GroupPatch) error {
	f := &p.Failover
	var err error
	if f.ResponseHeaderTimeout, err = in.ResponseHeaderTimeoutMs.millis("response_header_timeout_ms"); err != nil {
		return err
	}
	if f.HedgeAfter, err = in.HedgeAfterMs.millis("hedge_after_ms"); err != nil {
		return err
	}
	if f.BreakerThreshold, err = in.BreakerThreshold.bounded("breaker_threshold", 1, store.MaxBreakerThreshold, "failures"); err != nil {
		return err
	}
	if f.BreakerWindow, err = in.BreakerWindowMs.bounded("breaker_window_ms", store.MinBreakerWindowMs, store.MaxBreakerWindowMs, "milliseconds"); err != nil {
		return err
	}
	if f.BreakerCooldown, err = in.BreakerCooldownMs.bounded("breaker_cooldown_ms", store.MinBreakerCooldownMs, store.MaxBreakerCooldownMs, "milliseconds"); err != nil {
		return err
	}
	if in.ModelFallbacks.present {
		fb, err := parseModelFallbacks(in.ModelFallbacks)
		if err != nil {
			return err
		}
		f.ModelFallbacks = &fb
	}
	return nil
}

// failover validates the failover fields of a new group; absent ones keep the defaults.
func (in *groupFailoverInput) failover() (store.GroupFailover, error) {
	var p store.GroupPatch
	if err := in.failoverPatch(&p); err != nil {
		return store.GroupFailover{}, err
	}
	f := p.Failover
	out := store.GroupFailover{
		ResponseHeaderTimeoutMs: f.ResponseHeaderTimeout.Ms, HedgeAfterMs: f.HedgeAfter.Ms,
		BreakerThreshold: f.BreakerThreshold.Ms, BreakerWindowMs: f.BreakerWindow.Ms, BreakerCooldownMs: f.BreakerCooldown.Ms,
	}
	if f.ModelFallbacks != nil {
		out.ModelFallbacks = *f.ModelFallbacks
	}
	return out, nil
}

// bounded reads an integer setting from lo to hi, or null for the gateway's default.
func (n *nullable) bounded(field string, lo, hi int64, unit string) (store.MillisPatch, error) {
	if !n.present {
		return store.MillisPatch{}, nil
	}
	if n.isNull() {
		return store.MillisPatch{Set: true}, nil
	}
	var v int64
	if err := json.Unmarshal(n.raw, &v); err != nil || v < lo || v > hi {
		return store.MillisPatch{}, invalid("%s must be an integer from %d to %d (%s), or null for the gateway's default",
			field, lo, hi, unit)
	}
	return store.MillisPatch{Set: true, Ms: &v}, nil
}

// parseModelFallbacks reads model_fallbacks: null or {} (none), or an object mapping a
// model name or "*" to its lists. Unknown causes are refused, so a misspelt one is not
// silently ignored.
func parseModelFallbacks(n nullable) (map[string]store.ModelFallback, error) {
	out := map[string]store.ModelFallback{}
	if n.isNull() {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(n.raw, &raw); err != nil || raw == nil {
		return nil, invalid(`model_fallbacks must be an object such as {"gpt-4o-mini": {"context_length_exceeded": ["gpt-4.1"]}}`)
	}
	if len(raw) > maxFallbackEntries {
		return nil, invalid("model_fallbacks must have at most %d entries", maxFallbackEntries)
	}
	for model, v := range raw {
		if err := checkFallbackModel("model_fallbacks key", model, true); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		var fb store.ModelFallback
		if err := dec.Decode(&fb); err != nil {
			return nil, invalid("model_fallbacks[%q] must be an object of context_length_exceeded, model_not_found and exhausted, each a list of models", model)
		}
		for _, list := range [][]string{fb.ContextLengthExceeded, fb.ModelNotFound, fb.Exhausted} {
			if len(list) > maxFallbackModels {
				return nil, invalid("model_fallbacks[%q]: each list may name at most %d models", model, maxFallbackModels)
			}
			for _, m := range list {
				if err := checkFallbackModel(fmt.Sprintf("model_fallbacks[%q]", model), m, false); err != nil {
					return nil, err
				}
			}
		}
		out[model] = fb
	}
	return out, nil
}

// checkFallbackModel accepts a model name (and "*" where any is allowed): printable, no *,
// at most maxModelNameLen characters.
func checkFallbackModel(field, m string, anyAllowed bool) error {
	if anyAllowed && m == "*" {
		return nil
	}
	switch {
	case strings.TrimSpace(m) == "" || m != strings.TrimSpace(m):
		return invalid("%s: model names must not be empty or padded with spaces", field)
	case len(m) > maxModelNameLen:
		return invalid("%s: model names must be at most %d characters", field, maxModelNameLen)
	case strings.Contains(m, "*"):
		return invalid("%s: %q must be a model name without * (\"*\" alone is any model)", field, m)
	case !printableASCII(m):
		return invalid("%s: %q must be printable ASCII", field, m)
	}
	return nil
}
