package plugin

import (
	"context"
	"net/http"
	"time"
)

// attempt sends the request to the current grant's account and records the attempt. The
// returned watchdog owns the attempt's deadlines; its release ends the upstream request
// and the caller calls it when done with resp. A hedged stream goes through hedgedAttempt
// instead (hedge.go), which races two of these.
func attempt(x *exchange) (*http.Response, *watchdog, error) {
	g := x.grant
	resetAttempt(x)
	out, wd, err := prepareAttempt(x, g)
	onStall(x.stall, cancelStall(wd)) // stall.go; a compiled cancel (deadline.go)
	began := time.Now()
	markSent(x, began)
	var resp *http.Response
	if err == nil {
		resp, err = x.p.transport.RoundTrip(out)
	}
	if err == nil {
		headersArrived(wd)
	}
	x.attempts = append(x.attempts, attemptRecord(x, g, millisSince(began), resp, err, wd))
	return resp, wd, err
}

// send runs the next attempt of the loop: hedged when the grant asks for it (hedge.go).
func send(x *exchange) (*http.Response, *watchdog, error) {
	if hedgeable(x) {
		return hedgedAttempt(x)
	}
	return attempt(x)
}

// resetAttempt clears the billing facts of the previous attempt.
func resetAttempt(x *exchange) {
	// One per statement: Yaegi panics on a tuple assignment of nil to fields.
	x.billable = false
	x.usageComplete = false
	x.outputBytes = 0
	x.usage = nil
}

// prepareAttempt builds one attempt's upstream request for g, with its watchdog armed.
func prepareAttempt(x *exchange, g *grant) (*http.Request, *watchdog, error) {
	// Detached from the client: a committed attempt is drained after the client left, to
	// bill what the upstream counts. The watchdog cuts it at once before the commit point.
	ctx, wd := newWatchdog(context.WithoutCancel(x.req.Context()), firstTokenTimeout(x, g), responseHeaderTimeout(x, g), x.start.Add(x.p.requestLimit))
	watchClient(wd, x.req.Context(), x.p.drain)
	var out *http.Request
	var err error
	if converting(x) {
		// For g's upstream model: cached, prepareConverted made the current grant's (a
		// hedge's grant may map the model differently).
		var body []byte
		if body, err = convertedBody(x, g); err == nil {
			out, err = buildConvertedRequest(ctx, x.req, g, body)
		}
	} else {
		out, err = buildUpstreamRequest(ctx, x.req, x.path, g, bodyFor(x, g))
	}
	return out, wd, err
}

// markSent records when an attempt went upstream.
func markSent(x *exchange, began time.Time) {
	x.attemptSent = began
	if x.firstSend.IsZero() {
		x.firstSend = began
	}
}

// attemptRecord is the report entry of an attempt on g that took durationMs to its headers
// (or its transport error).
func attemptRecord(x *exchange, g *grant, durationMs int64, resp *http.Response, err error, wd *watchdog) attemptReport {
	rec := attemptReport{AccountID: g.AccountID, DurationMs: durationMs, UpstreamModel: g.UpstreamModel}
	if rec.UpstreamModel == "" {
		rec.UpstreamModel = x.info.model // the body went as the client sent it
	}
	if err != nil {
		rec.ErrorClass = transportClass(err)
		if c := firedClass(wd); c != "" {
			rec.ErrorClass = c
		}
	} else {
		rec.Status = resp.StatusCode
		if resp.StatusCode >= 400 {
			rec.ErrorClass = classUpstreamStatus
		}
	}
	return rec
}

// release stops the deadlines and ends the upstream request.
func (w *watchdog) release() {
	stopWatchdog(w)
	w.cancels[levelClient]() // the outermost level: every other one with it
}
