package store

import "encoding/json"

// GroupFailover is how a group's requests fail over (migration 0013;
// docs/design.md, "Health model" and "Model fallbacks"). A nil setting keeps the gateway's
// default.
type GroupFailover struct {
	// ResponseHeaderTimeoutMs bounds a non-stream attempt's wait for response headers; 0 = off.
	ResponseHeaderTimeoutMs *int64
	// HedgeAfterMs starts a second streaming attempt when the first produced no output
	// after that long; nil or 0 = off.
	HedgeAfterMs *int64
	// The circuit breaker of each (account, model): BreakerThreshold failures within
	// BreakerWindowMs open it for BreakerCooldownMs, doubled per failed probe.
	BreakerThreshold  *int64
	BreakerWindowMs   *int64
	BreakerCooldownMs *int64
	// ModelFallbacks maps a requested model (or "*", any model) to the models tried next.
	// Never nil when read.
	ModelFallbacks map[string]ModelFallback
}

// ModelFallback lists, per cause, the models a request is served by instead, in order.
type ModelFallback struct {
	// ContextLengthExceeded: the upstream refused the prompt as too long for the model.
	ContextLengthExceeded []string `json:"context_length_exceeded,omitempty"`
	// ModelNotFound: no account of the group serves the model, or the upstream does not know it.
	ModelNotFound []string `json:"model_not_found,omitempty"`
	// Exhausted: every account that serves the model failed or is out of rotation.
	Exhausted []string `json:"exhausted,omitempty"`
}

// Bounds of the failover settings (the CHECKs of migration 0013).
const (
	MaxBreakerThreshold  = 1000
	MinBreakerWindowMs   = 1000
	MaxBreakerWindowMs   = 24 * 3600 * 1000
	MinBreakerCooldownMs = 100
	MaxBreakerCooldownMs = 10 * 60 * 1000
)

// GroupFailoverPatch changes the failover settings that are Set; ModelFallbacks nil keeps them.
type GroupFailoverPatch struct {
	ResponseHeaderTimeout MillisPatch
	HedgeAfter            MillisPatch
	BreakerThreshold      MillisPatch // a count, not milliseconds: the same nullable patch
	BreakerWindow         MillisPatch
	BreakerCooldown       MillisPatch
	ModelFallbacks        *map[string]ModelFallback
}

// fallbacksArg is model_fallbacks as a query argument: nil (SQL NULL, COALESCE keeps the
// column) when p is nil.
func fallbacksArg(p *map[string]ModelFallback) any {
	if p == nil {
		return nil
	}
	return fallbacksJSON(*p)
}

// fallbacksJSON encodes the fallbacks for the jsonb column, {} when there are none.
func fallbacksJSON(m map[string]ModelFallback) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "{}" // a map of strings and string lists always encodes
	}
	return string(b)
}
