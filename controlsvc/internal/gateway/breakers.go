package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
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

// dialBackoff is the pause after the streak-th dial failure in a row: 5 s, 10 s, 20 s …
// at most 5 min.
func dialBackoff(streak int64) time.Duration {
	d := dialBackoffBase
	for i := int64(1); i < streak && d < dialBackoffCap; i++ {
		d *= 2
	}
	return min(d, dialBackoffCap)
}

// breakerFailure says whether a failed attempt counts towards the breaker of its
// (account, model), and the reason the admin API shows: transport errors after the
// request was sent, the attempt deadlines, broken streams, and 5xx answers (529 included), as statuses or
// as in-stream error events.
func breakerFailure(f failure) (reason string, ok bool) {
	switch {
	case f.ErrorClass == errorClassTransport || breakerClasses[f.ErrorClass]:
		return f.ErrorClass, true
	case (f.ErrorClass == errorClassUpstreamStatus || f.ErrorClass == errorClassInStreamError) &&
		f.Status >= 500 && f.Status <= 599:
		return f.ErrorClass + " " + strconv.Itoa(f.Status), true
	}
	return "", false
}

// breakerSettings are the key's group's breaker rules, remembered by group so that a
// report, which names only its group, counts a failure by the same rules (another
// instance's report of a group this one never admitted uses the defaults).
func (s *Service) breakerSettings(key store.KeyAuth) breaker.Settings {
	bs := breaker.SettingsOf(key.BreakerThreshold, key.BreakerWindowMs, key.BreakerCooldownMs)
	if v, ok := s.groupBreakers.Load(key.GroupID); !ok || v.(breaker.Settings) != bs {
		s.groupBreakers.Store(key.GroupID, bs) // written only when they change: admission reads it
	}
	return bs
}

// reportBreakerSettings are the rules of a report's group, as its admission saw them.
func (s *Service) reportBreakerSettings(groupID int64) breaker.Settings {
	if v, ok := s.groupBreakers.Load(groupID); ok {
		return v.(breaker.Settings)
	}
	return breaker.SettingsOf(nil, nil, nil)
}

// failBreaker counts a failure towards the breaker of (f.AccountID, f.Model) and reports
// whether it opened (or re-opened) it.
func (s *Service) failBreaker(ctx context.Context, f failure, reason, grantID string, bs breaker.Settings) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	opened, err := s.breakers.Fail(ctx, f.AccountID, f.Model, reason, grantID, bs, time.Now())
	if err != nil {
		s.log.Warn("recording breaker failure", "account_id", f.AccountID, "model", f.Model, "error", err)
		return false
	}
	if opened {
		s.metrics.breakerOpenings.Inc()
		s.log.Info("breaker opened", "account_id", f.AccountID, "model", f.Model, "reason", reason)
	}
	return opened
}

// breakerReads queues the breaker reads of every candidate on p, in the admission's first
// round trip (acquireSlots).
func breakerReads(ctx context.Context, p redis.Pipeliner, cands []candidate) []*redis.StringCmd {
	cmds := make([]*redis.StringCmd, len(cands))
	for i := range cands {
		cmds[i] = breaker.Read(ctx, p, cands[i].acc.ID, cands[i].model)
	}
	return cmds
}

// breakerFilter drops the candidates whose breaker for their model is open. Of those whose
// breaker is half-open, the first whose probe this grant claims is kept, at index probe
// (-1: none), to be tried before the others: it is the one request that tests it. A claim
// costs a round trip, only while a breaker is half-open.
func (s *Service) breakerFilter(ctx context.Context, cands []candidate, cmds []*redis.StringCmd, grantID string) (kept []candidate, probe int) {
	now := time.Now()
	route := routeOf(ctx) // route.go: why each account was skipped
	kept = make([]candidate, 0, len(cands))
	var half []int
	for i := range cands {
		var cmd *redis.StringCmd
		if i < len(cmds) {
			cmd = cmds[i]
		}
		switch breaker.VerdictOf(cmd, now) {
		case breaker.Closed:
			kept = append(kept, cands[i])
		case breaker.HalfOpen:
			half = append(half, i)
		default:
			route.mark(cands[i].acc.ID, routing.BreakerOpen)
		}
	}
	probe = -1
	for _, i := range half {
		c := cands[i]
		ok, err := s.breakers.Claim(ctx, c.acc.ID, c.model, grantID, now)
		if err != nil {
			s.log.Warn("claiming breaker probe", "account_id", c.acc.ID, "model", c.model, "error", err)
			continue
		}
		if ok {
			probe = len(kept)
			kept = append(kept, c)
			break
		}
	}
	for _, i := range half { // another grant probes them, or this one probes another
		if probe < 0 || cands[i].acc.ID != kept[probe].acc.ID {
			route.mark(cands[i].acc.ID, routing.BreakerOpen)
		}
	}
	return kept, probe
}

// throughBreakers applies the breakers read in the admission's first round trip (cmds, one
// per candidate): open ones take their accounts out for the model, and a half-open one
// whose probe this grant claimed is tried first, without waiting. held is the only
// candidate when the round trip took its slot already (nil otherwise); its slot is given
// back if its breaker keeps it out. It returns the candidates left and the candidate
// whose slot is held, if any.
func (s *Service) throughBreakers(ctx context.Context, cands []candidate, cmds []*redis.StringCmd, grantID string,
	held *candidate) (kept []candidate, chosen *candidate, err error) {
	kept, probe := s.breakerFilter(ctx, cands, cmds, grantID)
	if held != nil {
		if len(kept) > 0 && kept[0].acc.ID == held.acc.ID {
			return kept, &kept[0], nil
		}
		s.undoSlots(ctx, false, 0, grantID, []slots.Acquisition{
			{Kind: slots.KindAccount, ID: held.acc.ID, GrantID: grantID, Limit: held.acc.Concurrency}})
	}
	if probe < 0 {
		return kept, nil, nil
	}
	c := &kept[probe]
	res, err := s.slots.Enter(ctx, slots.Entry{Kind: slots.KindAccount, ID: c.acc.ID, GrantID: grantID, Limit: c.acc.Concurrency})
	if err != nil {
		s.unclaimProbe(ctx, c, grantID)
		return nil, nil, err
	}
	if res == slots.Held {
		return kept, c, nil
	}
	s.unclaimProbe(ctx, c, grantID) // busy: the next request probes
	return append(kept[:probe:probe], kept[probe+1:]...), nil, nil
}

// unclaimProbe gives back a probe the grant did not send.
func (s *Service) unclaimProbe(ctx context.Context, c *candidate, grantID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if err := s.breakers.Unclaim(ctx, c.acc.ID, c.model, grantID); err != nil {
		s.log.Warn("giving back breaker probe", "account_id", c.acc.ID, "error", err)
	}
}

// answered reports whether an attempt shows its account reachable and serving the model:
// a 2xx, or a client error relayed as the upstream sent it. A 429, a 5xx and the classes
// that mark the account are not answers.
func answered(status int, class string) bool {
	switch {
	case status < 200 || status >= 500 || status == http.StatusTooManyRequests:
		return false
	case class == "" || class == "client_gone":
		return true
	}
	return status >= 400 && class == errorClassUpstreamStatus
}

// settleAttempts settles the health of a stored report's failed attempts (its answer was
// recorded before the write: answersOf); attempts whose failure opened their breaker go to
// opened. A failed last attempt is settled unless its re-admission did it; an
// earlier attempt that was retried on the same account never went through a re-admission,
// so its failure counts towards the breaker here (it marks nothing else: a short wait the
// upstream asked for is no reason to rest the account).
func (s *Service) settleAttempts(ctx context.Context, rep *report, opened *[]store.AttemptRef) {
	n := len(rep.Attempts)
	if n == 0 {
		return
	}
	bs := s.reportBreakerSettings(rep.GroupID)
	modelOf := func(a attempt) string { return upstreamOr(a.UpstreamModel, upstreamOr(rep.UpstreamModel, rep.Model)) }
	for i := 0; i < n-1; i++ {
		a := rep.Attempts[i]
		f := failure{AccountID: a.AccountID, Status: a.Status, ErrorClass: a.ErrorClass, Model: modelOf(a)}
		if reason, ok := breakerFailure(f); ok && a.RetriedSameAccount && a.AccountID > 0 {
			if s.failBreaker(ctx, f, reason, rep.GrantID, bs) {
				*opened = append(*opened, store.AttemptRef{RequestID: rep.RequestID, Attempt: i + 1})
			}
		}
	}
	last := rep.Attempts[n-1]
	if answered(last.Status, last.ErrorClass) {
		return // answersOf took it before the batch was written
	}
	f := failure{AccountID: last.AccountID, Status: last.Status, ErrorClass: last.ErrorClass,
		RetryAfter: last.RetryAfter, RatelimitReset: last.RatelimitReset, Model: modelOf(last)}
	if s.settleReportedFailure(ctx, f, rep.GrantID, bs) {
		*opened = append(*opened, store.AttemptRef{RequestID: rep.RequestID, Attempt: n})
	}
}

// answersOf lists the answered last attempts of reps. They are recorded before the batch is
// written (handleReports): closing a breaker is idempotent, and a session that a probe brought
// home must find its account closed on its very next turn, not still half-open while the
// batch is being stored.
func answersOf(reps []*report) []breaker.Answer {
	var out []breaker.Answer
	for _, rep := range reps {
		n := len(rep.Attempts)
		if n == 0 {
			continue
		}
		last := rep.Attempts[n-1]
		if answered(last.Status, last.ErrorClass) {
			model := upstreamOr(last.UpstreamModel, upstreamOr(rep.UpstreamModel, rep.Model))
			out = append(out, breaker.Answer{AccountID: last.AccountID, Model: model, GrantID: rep.GrantID})
		}
	}
	return out
}

// recordAnswers closes the half-open breakers of the answered reports and resets their
// accounts' dial back-off, in one round trip for the batch.
func (s *Service) recordAnswers(ctx context.Context, answers []breaker.Answer) {
	if len(answers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	closed, err := s.breakers.Succeed(ctx, answers, time.Now())
	if err != nil {
		s.log.Warn("recording answers", "reports", len(answers), "error", err)
		return
	}
	if closed > 0 {
		s.log.Info("breakers closed by answered probes", "closed", closed)
	}
}
