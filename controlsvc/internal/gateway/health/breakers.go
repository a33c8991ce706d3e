package health

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/store"

	"github.com/poolgate/poolgate/plugin/wire"
)

// breakerClasses are the failures after the request was sent that count towards the
// (account, model) breaker whatever their status, never as an account pause: the deadlines
// an attempt can hit, and a stream that broke (stream_cut) or ended without its terminal
// event (stream_incomplete).
var breakerClasses = map[string]bool{
	"first_token_timeout":     true,
	"stream_idle_timeout":     true,
	"response_header_timeout": true,
	"stream_cut":              true,
	"stream_incomplete":       true,
}

// DialBackoff is the pause after the streak-th dial failure in a row: 5 s, 10 s, 20 s …
// at most 5 min.
func DialBackoff(streak int64) time.Duration {
	d := dialBackoffBase
	for i := int64(1); i < streak && d < dialBackoffCap; i++ {
		d *= 2
	}
	return min(d, dialBackoffCap)
}

// BreakerFailure says whether a failed attempt counts towards the breaker of its
// (account, model), and the reason the admin API shows: transport errors after the
// request was sent, the attempt deadlines, broken streams, and 5xx answers (529 included), as statuses or
// as in-stream error events.
func BreakerFailure(f Failure) (reason string, ok bool) {
	switch {
	case f.ErrorClass == ErrorClassTransport || breakerClasses[f.ErrorClass]:
		return f.ErrorClass, true
	case (f.ErrorClass == ErrorClassUpstreamStatus || f.ErrorClass == ErrorClassInStreamError) &&
		f.Status >= 500 && f.Status <= 599:
		return f.ErrorClass + " " + strconv.Itoa(f.Status), true
	}
	return "", false
}

// BreakerSettings are the key's group's breaker rules, remembered by group so that a
// report, which names only its group, counts a failure by the same rules (another
// instance's report of a group this one never admitted uses the defaults).
func (h *Health) BreakerSettings(key store.KeyAuth) breaker.Settings {
	bs := breaker.SettingsOf(key.BreakerThreshold, key.BreakerWindowMs, key.BreakerCooldownMs)
	if v, ok := h.groupBreakers.Load(key.GroupID); !ok || v.(breaker.Settings) != bs {
		h.groupBreakers.Store(key.GroupID, bs) // written only when they change: admission reads it
	}
	return bs
}

// ReportBreakerSettings are the rules of a report's group, as its admission saw them.
func (h *Health) ReportBreakerSettings(groupID int64) breaker.Settings {
	if v, ok := h.groupBreakers.Load(groupID); ok {
		return v.(breaker.Settings)
	}
	return breaker.SettingsOf(nil, nil, nil)
}

// FailBreaker counts a failure towards the breaker of (f.AccountID, f.Model) and reports
// whether it opened (or re-opened) it.
func (h *Health) FailBreaker(ctx context.Context, f Failure, reason, grantID string, bs breaker.Settings) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
	defer cancel()
	opened, err := h.breakers.Fail(ctx, f.AccountID, f.Model, reason, grantID, bs, time.Now())
	if err != nil {
		h.log.Warn("recording breaker failure", "account_id", f.AccountID, "model", f.Model, "error", err)
		return false
	}
	if opened {
		h.openings.Inc()
		h.log.Info("breaker opened", "account_id", f.AccountID, "model", f.Model, "reason", reason)
	}
	return opened
}

// Answered reports whether an attempt shows its account reachable and serving the model:
// a 2xx, or a client error relayed as the upstream sent it. A 429, a 5xx and the classes
// that mark the account are not answers.
func Answered(status int, class string) bool {
	switch {
	case status < 200 || status >= 500 || status == http.StatusTooManyRequests:
		return false
	case class == "" || class == "client_gone":
		return true
	}
	return status >= 400 && class == ErrorClassUpstreamStatus
}

// SettleAttempts settles the health of a stored report's failed attempts (its answer was
// recorded before the write: AnswersOf); attempts whose failure opened their breaker go to
// opened. A failed last attempt is settled unless its re-admission did it; an
// earlier attempt that was retried on the same account never went through a re-admission,
// so its failure counts towards the breaker here (it marks nothing else: a short wait the
// upstream asked for is no reason to rest the account).
func (h *Health) SettleAttempts(ctx context.Context, rep *wire.Report, opened *[]store.AttemptRef) {
	n := len(rep.Attempts)
	if n == 0 {
		return
	}
	bs := h.ReportBreakerSettings(rep.GroupID)
	modelOf := func(a wire.Attempt) string {
		return UpstreamOr(a.UpstreamModel, UpstreamOr(rep.UpstreamModel, rep.Model))
	}
	for i := 0; i < n-1; i++ {
		a := rep.Attempts[i]
		f := Failure{AccountID: a.AccountID, Status: a.Status, ErrorClass: a.ErrorClass, Model: modelOf(a)}
		if reason, ok := BreakerFailure(f); ok && a.RetriedSameAccount && a.AccountID > 0 {
			if h.FailBreaker(ctx, f, reason, rep.GrantID, bs) {
				*opened = append(*opened, store.AttemptRef{RequestID: rep.RequestID, Attempt: i + 1})
			}
		}
	}
	last := rep.Attempts[n-1]
	if Answered(last.Status, last.ErrorClass) {
		return // AnswersOf took it before the batch was written
	}
	f := Failure{AccountID: last.AccountID, Status: last.Status, ErrorClass: last.ErrorClass,
		RetryAfter: last.RetryAfter, RatelimitReset: last.RatelimitReset, Model: modelOf(last)}
	if h.SettleReportedFailure(ctx, f, rep.GrantID, bs) {
		*opened = append(*opened, store.AttemptRef{RequestID: rep.RequestID, Attempt: n})
	}
}

// AnswersOf lists the answered last attempts of reps. They are recorded before the batch is
// written (the gateway's handleReports): closing a breaker is idempotent, and a session that a probe brought
// home must find its account closed on its very next turn, not still half-open while the
// batch is being stored.
func AnswersOf(reps []*wire.Report) []breaker.Answer {
	var out []breaker.Answer
	for _, rep := range reps {
		n := len(rep.Attempts)
		if n == 0 {
			continue
		}
		last := rep.Attempts[n-1]
		if Answered(last.Status, last.ErrorClass) {
			model := UpstreamOr(last.UpstreamModel, UpstreamOr(rep.UpstreamModel, rep.Model))
			out = append(out, breaker.Answer{AccountID: last.AccountID, Model: model, GrantID: rep.GrantID})
		}
	}
	return out
}

// RecordAnswers closes the half-open breakers of the answered reports and resets their
// accounts' dial back-off, in one round trip for the batch.
func (h *Health) RecordAnswers(ctx context.Context, answers []breaker.Answer) {
	if len(answers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, detachedTimeout)
	defer cancel()
	closed, err := h.breakers.Succeed(ctx, answers, time.Now())
	h.answered(len(answers), closed, err)
}

// Answers is RecordAnswers queued on a caller's pipeline (QueueAnswers): the report batch
// sends them in the round trip of its other reads, before its write.
type Answers struct {
	h       *Health
	n       int
	success *breaker.Success
}

// QueueAnswers queues RecordAnswers' calls on p; Record logs their outcome once p ran.
func (h *Health) QueueAnswers(ctx context.Context, p redis.Pipeliner, answers []breaker.Answer) *Answers {
	if len(answers) == 0 {
		return nil
	}
	return &Answers{h: h, n: len(answers), success: h.breakers.QueueSucceed(ctx, p, answers, time.Now())}
}

// Record logs the queued answers' outcome (re-sending the calls Redis refused with
// NOSCRIPT); a failure is not the batch's: the breakers stay as they were.
func (a *Answers) Record(ctx context.Context) {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, detachedTimeout)
	defer cancel()
	closed, err := a.success.Closed(ctx)
	a.h.answered(a.n, closed, err)
}

func (h *Health) answered(n, closed int, err error) {
	if err != nil {
		h.log.Warn("recording answers", "reports", n, "error", err)
		return
	}
	if closed > 0 {
		h.log.Info("breakers closed by answered probes", "closed", closed)
	}
}

// UnclaimProbe gives back the half-open probe of (accountID, model) that grantID claimed
// and did not send.
func (h *Health) UnclaimProbe(ctx context.Context, accountID int64, model, grantID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
	defer cancel()
	if err := h.breakers.Unclaim(ctx, accountID, model, grantID); err != nil {
		h.log.Warn("giving back breaker probe", "account_id", accountID, "error", err)
	}
}
