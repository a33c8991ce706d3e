package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/catalogue"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// Billing in admission (docs/billing.md, "Billing modes and eligibility" and "Reserve, then
// settle"). A request is priced by the model the chosen account is sent; the first
// admission, once its slots are held, reserves an estimate of the request's cost against
// the balance or subscription windows and the key's quota. A re-admission (failover) never
// reserves again: the request's reservation covers every attempt, and the report settles it.

// Error types and codes of the billing refusals.
const (
	typeBilling          = "billing_error"
	typePermission       = "permission_error"
	typeRateLimitBilling = "rate_limit_exceeded"
	typeInsufficientQuot = "insufficient_quota"
)

// billingRefusal turns a refusal of a billing rule into the client's error. On the OpenAI
// paths the code is the type, except that balance and quota refusals carry OpenAI's
// insufficient_quota; Anthropic's envelope has the type alone, and on /v1/messages a
// balance, quota or subscription refusal is Anthropic's 402 billing_error (docs/billing.md, "Billing modes and eligibility"), so
// Claude Code shows it as billing rather than authentication.
func billingRefusal(r *store.BillingRefusal) *Rejection {
	rej := &Rejection{status: http.StatusForbidden, reason: ReasonBilling, errType: typeBilling, message: r.Message,
		anthropicStatus: http.StatusPaymentRequired}
	switch r.Kind {
	case store.RefuseKeyExpired:
		rej.errType, rej.anthropicStatus = typePermission, 0
	case store.RefuseWindowExhausted:
		rej.status, rej.errType, rej.anthropicStatus = http.StatusTooManyRequests, typeRateLimitBilling, 0
		rej.retryAfter = strconv.FormatInt(max(r.RetryAfterSeconds, 1), 10)
	case store.RefuseKeyQuota:
		rej.status, rej.errType = http.StatusTooManyRequests, typeInsufficientQuot
	}
	rej.code = rej.errType
	if r.Kind == store.RefuseInsufficientBalance {
		rej.code = typeInsufficientQuot
	}
	return rej
}

// costNote is what a balance or quota refusal tells the client about the request.
type costNote struct {
	estimate  int64 // the request's full estimate, micro-dollars
	maxTokens int64 // the output limit it counts
	model     string
}

// billingRefusalNoted is billingRefusal with a message that says what to do: how much is
// available and what the request may cost, e.g. "Insufficient balance: $3.00 available; this
// request may cost up to $4.85 (max_tokens 64000 on claude-opus-4-8)".
func billingRefusalNoted(r *store.BillingRefusal, n costNote) *Rejection {
	rej := billingRefusal(r)
	tail := fmt.Sprintf("this request may cost up to %s (max_tokens %d on %s)", usdUp(n.estimate), n.maxTokens, n.model)
	switch r.Kind {
	case store.RefuseInsufficientBalance:
		rej.message = fmt.Sprintf("Insufficient balance: %s available; %s", usdDown(r.AvailableMicros), tail)
	case store.RefuseKeyQuota:
		rej.message = fmt.Sprintf("API key quota exhausted: %s left; %s", usdDown(r.AvailableMicros), tail)
	}
	return rej
}

// usdDown shows micro-dollars as dollars and cents, rounded down; usdUp rounds up.
func usdDown(micros int64) string {
	micros = max(micros, 0)
	return fmt.Sprintf("$%d.%02d", micros/1_000_000, micros%1_000_000/10_000)
}

func usdUp(micros int64) string {
	micros = max(micros, 0)
	if micros%10_000 != 0 && micros < maxInt64-10_000 {
		micros += 10_000 - micros%10_000
	}
	return usdDown(micros)
}

const maxInt64 = int64(^uint64(0) >> 1)

var (
	rejectKeyExpired = billingRefusal(&store.BillingRefusal{Kind: store.RefuseKeyExpired, Message: store.MsgKeyExpired})

	rejectInsufficientBalance = billingRefusal(&store.BillingRefusal{Kind: store.RefuseInsufficientBalance,
		Message: msgNoBalance})
)

// msgNoBalance refuses a balance that is empty before any price is known.
const msgNoBalance = "Insufficient balance: $0.00 available; add credit to continue"

// rejectUnpriced refuses a model without a price in a group that does not serve those.
func rejectUnpriced(model string) *Rejection {
	return RejectInvalid("No price configured for model " + model)
}

// precheckBilling refuses, from the cached key, a first admission that cannot pass the
// billing rules whatever happens before Reserve: an expired key, a balance group with
// nothing on the balance. It runs before any wait, so such requests never queue; Reserve
// decides for real after the waits.
func precheckBilling(key store.KeyAuth, now time.Time) *Rejection {
	if key.KeyExpiresAt != nil && !now.Before(*key.KeyExpiresAt) {
		return rejectKeyExpired
	}
	if key.BillingMode != store.BillingSubscription && key.BalanceMicros <= 0 {
		return rejectInsufficientBalance
	}
	return nil
}

// priceFor resolves the price of what the chosen account is sent. ok is false for an
// unpriced model the group serves anyway (its records cost 0); a rejection refuses the
// request.
func (s *Admitter) priceFor(ctx context.Context, key store.KeyAuth, model, upstreamModel string, first bool) (usage.Price, bool, *Rejection) {
	priced := usage.PricedModel(upstreamModel, model)
	p, _, ok := s.prices.Table().Lookup(priced)
	if !ok {
		if first { // a request counts once, not once per failover
			s.noteUnpriced(ctx, priced)
		}
		if !key.AllowUnpriced {
			return usage.Price{}, false, rejectUnpriced(priced)
		}
	}
	return p, ok, nil
}

// estimateMicros is the reservation of a request: its input tokens, plus its output maximum
// (the group's default when the request names none) at the output price, times the user's
// rate.
//
// With the group's output cap (cap_output_tokens) the reservation is an upper bound of what
// a text request can cost: the output cannot exceed the limit the upstream is sent
// (outputCap), a token of text is at least one byte of the body, and every input token is
// priced as the dearer of input and cache write. Without it the input counts input_bytes / 2
// tokens at the input price and the sum is capped by the group's max_reserve.
func estimateMicros(key store.KeyAuth, p usage.Price, inputBytes, maxOutputTokens int64) int64 {
	cost := fullEstimateMicros(key, p, inputBytes, ledger.ReservedOutputTokens(maxOutputTokens, key.DefaultMaxOutputTokens))
	if !key.CapOutputTokens && key.MaxReserveMicros > 0 {
		cost = min(cost, key.MaxReserveMicros)
	}
	return cost
}

// fullEstimateMicros is estimateMicros for outputTokens of output, without the max_reserve
// cap; with outputTokens 0 it is the input estimate, below which a request is refused.
func fullEstimateMicros(key store.KeyAuth, p usage.Price, inputBytes, outputTokens int64) int64 {
	t := usage.Tokens{Input: ledger.ReservedInputTokens(key.CapOutputTokens, inputBytes), Output: outputTokens}
	if key.CapOutputTokens {
		p.Input = max(p.Input, p.CacheWrite)
	}
	return usage.Cost(t, p, key.RateMicros)
}

// outputCap is the output limit the plugin must send upstream (the grant's
// max_output_tokens; 0: the body as the client sent it) when the request names no maximum
// of its own: for a converted request (a Messages body needs a max_tokens) the catalogue's
// maximum output of the model served (contract E), else the group's default;
// for a pass-through request in a group that caps output, the group's default. The
// reservation counts the same limit (bill).
func outputCap(key store.KeyAuth, maxOutputTokens int64, convert, servedModel string) int64 {
	if maxOutputTokens > 0 || (!key.CapOutputTokens && convert == "") {
		return 0
	}
	if convert != "" {
		if n, ok := catalogue.MaxOutput(servedModel); ok {
			return n
		}
	}
	return key.DefaultMaxOutputTokens
}

// reservedOutput is the output limit a request's reservation counts: its own maximum, the
// grant's cap, else the group's default.
func reservedOutput(key store.KeyAuth, req *Request, servedModel string) int64 {
	if req.MaxOutputTokens > 0 {
		return req.MaxOutputTokens
	}
	if c := outputCap(key, 0, convertFor(req.Path, key.Platform), servedModel); c > 0 {
		return c
	}
	return key.DefaultMaxOutputTokens
}

// bill prices the admission on the chosen account by the model served (the requested one or
// a fallback) and, on a first admission, reserves the estimate; a re-admission that changed
// the model served extends the reservation to the new model's estimate when that is more
// (docs/billing.md, "Model fallbacks"). A refusal or an error leaves nothing reserved.
func (s *Admitter) bill(ctx context.Context, key store.KeyAuth, req *Request, served, upstreamModel string,
	first, modelChanged bool) (*Rejection, error) {
	price, priced, rej := s.priceFor(ctx, key, served, upstreamModel, first)
	if rej != nil {
		return rej, nil
	}
	in, note := holdRequest(key, req, price, priced, usage.PricedModel(upstreamModel, served))
	var refusal *store.BillingRefusal
	var err error
	if first {
		_, refusal, err = s.holds.Reserve(ctx, in)
	} else {
		if !modelChanged || in.AmountMicros == 0 {
			return nil, nil
		}
		refusal, err = s.holds.Extend(ctx, in)
	}
	return reserveOutcome(refusal, err, note)
}

// holdRequest is the hold of a request priced at price (priced false: unpriced, 0) by
// pricedModel, and what its refusal tells the client.
func holdRequest(key store.KeyAuth, req *Request, price usage.Price, priced bool, pricedModel string) (holds.Request, costNote) {
	outTokens := reservedOutput(key, req, pricedModel)
	amount, minAmount, note := int64(0), int64(0), costNote{maxTokens: outTokens, model: pricedModel}
	if priced {
		amount = estimateMicros(key, price, req.InputBytes, outTokens)
		minAmount = fullEstimateMicros(key, price, req.InputBytes, 0)
		note.estimate = fullEstimateMicros(key, price, req.InputBytes, outTokens)
	}
	return holds.Request{RequestID: req.RequestID, UserID: key.UserID, KeyID: key.KeyID, GroupID: key.GroupID,
		Mode: key.BillingMode, KeyExpiresAt: key.KeyExpiresAt, AmountMicros: amount, MinAmountMicros: minAmount}, note
}

// reserveOutcome maps a reserve or extend answer to the admission's refusal or error.
func reserveOutcome(refusal *store.BillingRefusal, err error, note costNote) (*Rejection, error) {
	var nf *store.NotFoundError
	switch {
	case errors.As(err, &nf):
		// The key, its user or its group went away since the key was cached.
		return RejectAuth, nil
	case errors.Is(err, store.ErrReservationMismatch):
		// Another key's request holds this request id: not one request of the plugin's.
		return RejectInvalid("Duplicate request id"), nil
	case err != nil:
		return nil, fmt.Errorf("holding: %w", err)
	case refusal != nil:
		return billingRefusalNoted(refusal, note), nil
	}
	return nil, nil
}
