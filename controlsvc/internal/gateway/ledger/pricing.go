package ledger

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"

	"github.com/poolgate/poolgate/plugin/wire"
)

// Terms reads the rates and output limits of (user, group) pairs; *store.Store implements it.
type Terms interface {
	GroupTerms(ctx context.Context, pairs []store.UserGroup) (map[store.UserGroup]store.GroupTerms, error)
}

var _ Terms = (*store.Store)(nil)

// Prices hands out the current price table (the gateway's PriceSource).
type Prices interface {
	Table() *usage.PriceTable
}

// Pricer prices completion reports into usage records.
type Pricer struct {
	terms  Terms
	prices Prices
	log    *slog.Logger
}

// NewPricer builds a Pricer reading terms and prices; log takes what a report lacks.
func NewPricer(terms Terms, prices Prices, log *slog.Logger) *Pricer {
	return &Pricer{terms: terms, prices: prices, log: log}
}

// UsageWrites prices the valid reports of a batch into their usage records and attempts
// (docs/billing.md, "Ledger"). A request is priced by the model sent upstream at its
// user's rate in its group; every attempt that produced usage is priced the same way. The
// user is billed for the attempt that answered, the last, whose usage is the report's,
// completed by estimate when the report says so (estimate.go). The terms of the
// whole batch (rates, output limits) cost one query. The user and group priced are the
// report's: the batch writer refuses a report whose reservation names others, so every
// record stored was priced at its reservation's rate.
func (p *Pricer) UsageWrites(ctx context.Context, reps []*wire.Report) ([]store.UsageWrite, error) {
	if len(reps) == 0 {
		return nil, nil
	}
	pairs := make([]store.UserGroup, 0, len(reps))
	seen := make(map[store.UserGroup]bool, len(reps))
	for _, rep := range reps {
		ug := store.UserGroup{UserID: rep.UserID, GroupID: rep.GroupID}
		if !seen[ug] {
			seen[ug] = true
			pairs = append(pairs, ug)
		}
	}
	terms, err := p.terms.GroupTerms(ctx, pairs)
	if err != nil {
		return nil, err
	}
	table := p.prices.Table()
	out := make([]store.UsageWrite, 0, len(reps))
	for _, rep := range reps {
		t, ok := terms[store.UserGroup{UserID: rep.UserID, GroupID: rep.GroupID}]
		if !ok {
			p.log.Warn("report for unknown group, pricing at rate 1", "request_id", rep.RequestID, "group_id", rep.GroupID)
			t = store.GroupTerms{RateMicros: usage.RateUnit, DefaultMaxOutputTokens: store.DefaultMaxOutputTokens}
		}
		out = append(out, p.usageWrite(rep, table, t))
	}
	return out, nil
}

// usageWrite turns one valid report into its usage record with its attempts.
func (p *Pricer) usageWrite(rep *wire.Report, table *usage.PriceTable, terms store.GroupTerms) store.UsageWrite {
	served := servedModelOf(rep)
	// Priced by the name the record stores (a NUL dropped), as the exact-name catalogue needs.
	model := strings.ReplaceAll(usage.PricedModel(rep.UpstreamModel, health.UpstreamOr(served, rep.Model)), "\x00", "")
	price, _, priced := table.Lookup(model)
	rate := terms.RateMicros
	tokens := p.normalize(rep, 0, rep.Usage)
	source := p.billedSource(rep, tokens)
	if source == store.UsageEstimate {
		tokens = EstimateTokens(tokens, rep, terms)
	}
	if !priced && tokens.Billed() {
		p.log.Warn("no price for model, usage recorded at cost 0", "request_id", rep.RequestID,
			"model", rep.Model, "upstream_model", rep.UpstreamModel)
	}
	cost := priceTokens(tokens, price, priced, rate)
	u := store.UsageWrite{
		RequestID:            rep.RequestID,
		GrantID:              rep.GrantID,
		UserID:               rep.UserID,
		APIKeyID:             rep.APIKeyID,
		GroupID:              rep.GroupID,
		AccountID:            rep.AccountID,
		Path:                 rep.Path,
		Model:                strings.ReplaceAll(rep.Model, "\x00", ""), // a NUL would fail the batch (admission refuses them now)
		UpstreamModel:        rep.UpstreamModel,
		ServedModel:          served,
		Warnings:             warningsOf(rep),
		Stream:               rep.Stream,
		Status:               rep.Status,
		ErrorClass:           rep.ErrorClass,
		InputTokens:          tokens.Input,
		OutputTokens:         tokens.Output,
		CacheReadTokens:      tokens.CacheRead,
		CacheCreationTokens:  tokens.CacheCreation,
		ReasoningTokens:      tokens.Reasoning,
		UsageSource:          source,
		Priced:               priced,
		CostMicros:           cost.Total,
		InputCostMicros:      cost.Input,
		OutputCostMicros:     cost.Output,
		CacheReadCostMicros:  cost.CacheRead,
		CacheWriteCostMicros: cost.CacheWrite,
		RateMicros:           rate,
		AdmissionMs:          nonNegative(rep.AdmissionMs),
		UpstreamMs:           nonNegative(rep.UpstreamMs),
		FirstTokenMs:         nonNegative(rep.FirstTokenMs),
		DurationMs:           nonNegative(rep.DurationMs),
		Attempts:             make([]store.AttemptWrite, len(rep.Attempts)),
	}
	last := len(rep.Attempts) - 1
	for i, a := range rep.Attempts {
		at, ac, as := tokens, cost, source // the answering attempt's usage is the report's
		if i != last {
			as = store.UsageUpstream
			at = p.normalize(rep, i+1, a.Usage)
			ap, ok := price, priced
			if a.UpstreamModel != "" && at.Billed() { // another account may map the model differently
				ap, _, ok = table.Lookup(a.UpstreamModel)
			}
			ac = priceTokens(at, ap, ok, rate)
		}
		u.Attempts[i] = store.AttemptWrite{
			AccountID:           a.AccountID,
			Status:              a.Status,
			ErrorClass:          a.ErrorClass,
			InputTokens:         at.Input,
			OutputTokens:        at.Output,
			CacheReadTokens:     at.CacheRead,
			CacheCreationTokens: at.CacheCreation,
			ReasoningTokens:     at.Reasoning,
			CostMicros:          ac.Total,
			LatencyMs:           nonNegative(a.DurationMs),
			FirstTokenMs:        nonNegative(a.FirstTokenMs),
			UsageSource:         as,
			RetriedSameAccount:  a.RetriedSameAccount,
			HedgeLost:           a.HedgeLost,
		}
	}
	return u
}

// normalize reads a usage object of the report's format: the report's (attempt 0) or an
// attempt's. Unreadable usage is logged and counts as none: the request happened, and it is
// recorded rather than lost.
func (p *Pricer) normalize(rep *wire.Report, attempt int, raw json.RawMessage) usage.Tokens {
	t, err := usage.Normalize(rep.UsageFormat, raw)
	if err != nil {
		p.log.Warn("unreadable usage", "request_id", rep.RequestID, "attempt", attempt,
			"usage_format", rep.UsageFormat, "error", err)
	}
	return t
}

// priceTokens is the cost of tokens at list price × rate; 0 when the model has no price.
func priceTokens(t usage.Tokens, p usage.Price, priced bool, rate int64) usage.Breakdown {
	if !priced {
		return usage.Breakdown{}
	}
	return usage.CostBreakdown(t, p, rate)
}

func nonNegative(v int64) int64 {
	if v < 0 {
		return 0
	}
	return v
}

// servedModelOf is the report's served_model as stored: "" when it is the requested model,
// and never a name admission would refuse (a NUL would fail the whole batch).
func servedModelOf(rep *wire.Report) string {
	m := rep.ServedModel
	if m == rep.Model || !ValidModel(m) {
		return ""
	}
	return m
}

// Bounds of a report's warnings as stored (the plugin sends at most as many).
const (
	maxReportWarnings   = 8
	MaxReportWarningLen = 160
)

// warningsOf is the report's warnings as stored: bounded, without NULs (they would fail
// the batch).
func warningsOf(rep *wire.Report) []string {
	var out []string
	for _, w := range rep.Warnings {
		if len(out) == maxReportWarnings {
			break
		}
		w = strings.ReplaceAll(w, "\x00", "")
		if len(w) > MaxReportWarningLen {
			w = strings.ToValidUTF8(w[:MaxReportWarningLen], "")
		}
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}
