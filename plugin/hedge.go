package plugin

import (
	"errors"
	"net/http"
	"time"
)

// Hedged first token (docs/design.md, "Hedged first token"). A streaming request
// whose grant has hedge_after_ms runs its attempt in a goroutine up to the commit point (its
// first semantic output), writing nothing to the client. When it has not got there after
// hedge_after_ms, the plugin asks controlsvc for one more account of the same grant (admit
// with hedge: true, never waiting) and starts a second attempt there. The first attempt to
// reach its commit point wins: the request goroutine relays it as any attempt (relayStream,
// from the bytes held so far); the other is cancelled, its body closed, and recorded with
// hedge_lost (and the usage its held events announced, which controlsvc books to its
// account, not to the user). Only the request goroutine writes to the client.
//
// No select (docs/design.md, "Writing plugin code"): each run appends itself to the race's
// finished list under a mutex and raises a wakeup; the request goroutine waits on the
// wakeup, with a timeout for the hedge delay, and reads the list.

// classHedgeLost: the attempt was cancelled because the other hedged attempt won.
const classHedgeLost = "hedge_lost"

// errHedgePanic: a hedged run panicked; the run counts as a transport failure.
var errHedgePanic = errors.New("hedged attempt panicked")

// hedgeable reports whether this attempt may be hedged: a stream (passed through or
// converted) whose group asks for it, once per request.
func hedgeable(x *exchange) bool {
	return x.grant != nil && x.grant.HedgeAfterMs > 0 && x.info.stream && !x.hedged
}

// hedgedAttempt is attempt() for a hedgeable stream: it returns the winning attempt's
// response (its body starting again from the bytes held) and watchdog, or the last failure
// when every run failed before its commit point. x.grant is then that attempt's grant.
func hedgedAttempt(x *exchange) (*http.Response, *watchdog, error) {
	x.hedged = true
	resetAttempt(x)
	r := &race{wake: newWakeup()}
	a := startRun(x, x.grant, r)
	onStall(x.stall, r.stallAll) // a method value made here
	if waitFirst(r, time.Duration(x.grant.HedgeAfterMs)*time.Millisecond) && !isClientGone(x) {
		if g := admitHedge(x); g != nil {
			hold(x.stall, lease{GrantID: a.g.GrantID, UserID: a.g.UserID, AccountID: a.g.AccountID, Hedged: g.AccountID}, leaseCap(x))
			startRun(x, g, r)
		}
		onStall(x.stall, r.stallAll) // the hedge's admit call had it
	}
	win := decide(r)
	for _, h := range r.runs {
		if h != win {
			endRun(x, h)
		}
	}
	x.grant = win.g
	x.attemptSent = win.began
	if len(r.runs) > 1 {
		// The lease goes on for both accounts until the report releases them.
		other := r.runs[0]
		if other == win {
			other = r.runs[1]
		}
		hold(x.stall, lease{GrantID: win.g.GrantID, UserID: win.g.UserID, AccountID: win.g.AccountID, Hedged: other.g.AccountID}, leaseCap(x))
	}
	onStall(x.stall, cancelStall(win.wd))
	x.attempts = append(x.attempts, attemptRecord(x, win.g, millis(win.headers), win.resp, win.err, win.wd))
	if win.resp != nil && (len(win.held) > 0 || win.rerr != nil) {
		win.resp.Body = &replayBody{held: win.held, end: win.rerr, rest: win.resp.Body}
	}
	return win.resp, win.wd, win.err
}

// startRun prepares an attempt on g (on the request goroutine) and runs it in its own.
func startRun(x *exchange, g *grant, r *race) *hedgeRun {
	out, wd, err := prepareAttempt(x, g)
	h := &hedgeRun{g: g, out: out, wd: wd, rt: x.p.transport, r: r, began: time.Now(), err: err}
	markSent(x, h.began)
	r.mu.Lock()
	r.runs = append(r.runs, h)
	r.mu.Unlock()
	if err != nil {
		r.finish(h)
		return h
	}
	go h.run()
	return h
}

// endRun records a run that did not win, after ending it: hedge_lost when it was still
// going (cancelled now: not its account's fault) or had an answer too, else the failure of
// its own. Its body is closed and its account excluded from the rest of the request.
func endRun(x *exchange, h *hedgeRun) {
	h.r.mu.Lock()
	h.lost = !isFinished(h.r, h) || !failedEarly(h)
	h.r.mu.Unlock()
	h.wd.release() // cancels a run still going
	h.r.waitFor(h)
	rec := attemptRecord(x, h.g, millis(h.headers), h.resp, h.err, h.wd)
	switch {
	case h.lost:
		rec.ErrorClass = classHedgeLost
		rec.HedgeLost = true
	case h.err != nil && isClientGone(x):
		rec.ErrorClass = classClientGone // cut by the client's departure, not the account
	}
	if len(h.held) > 0 {
		scan := newUsageScanner(reportUsageFormat(x), true)
		feedUsage(scan, h.held)
		rec.Usage = rawJSON(scannedUsage(scan)) // what its account consumed (docs/billing.md)
	}
	if h.resp != nil {
		h.resp.Body.Close()
	}
	x.attempts = append(x.attempts, rec)
	x.exclude = append(x.exclude, h.g.AccountID)
}

// admitHedge asks for one more account for the grant, never waiting; nil when refused.
func admitHedge(x *exchange) *grant {
	ex := make([]int64, 0, len(x.exclude)+1)
	ex = append(ex, x.exclude...)
	ex = append(ex, x.grant.AccountID)
	ar := &admitRequest{
		RequestID: x.requestID, GrantID: x.grant.GrantID, APIKey: x.apiKey, Path: x.path,
		Model: x.info.model, Stream: true, Exclude: ex, Hedge: true, SessionHash: x.sessionHash,
		SessionSource: x.sessionSource, ServedModel: x.grant.ServedModel,
		InputBytes: x.inputBytes, MaxOutputTokens: x.info.maxOutputTokens,
	}
	g, _, err := admitWithKeepAlive(x, ar) // keepalive.go; MaxWaitMs 0: no waiting
	if err != nil || g == nil || g.GrantID != x.grant.GrantID {
		return nil
	}
	return g
}
