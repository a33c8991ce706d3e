package plugin

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// The runs of a hedged attempt (hedge.go) and how the request goroutine meets them without
// a select: each run appends itself to the race's finished list under its mutex and raises
// a wakeup, which the request goroutine waits on.

// race is the shared state of the runs of one hedged attempt.
type race struct {
	mu       sync.Mutex
	finished []*hedgeRun // in the order the runs reached their commit point or ended
	wake     *wakeup
	runs     []*hedgeRun // started, in order (appended by the request goroutine under mu)
}

// hedgeRun is one attempt of a race. Its goroutine sets the result fields, then finishes;
// the request goroutine reads them only after that (the race's mutex orders the two).
type hedgeRun struct {
	g     *grant
	out   *http.Request
	wd    *watchdog
	rt    http.RoundTripper
	r     *race
	began time.Time

	resp    *http.Response
	err     error
	headers time.Duration // from the send to the response headers (or the error)
	held    []byte        // body bytes read before the commit point
	rerr    error         // the body's read error (io.EOF: its end) before the commit point
	ready   bool          // an event stream that reached its commit point (or maxHold)
	lost    bool          // set by the request goroutine once the other run won
}

// run sends the attempt and reads its event stream up to the commit point.
func (h *hedgeRun) run() {
	defer h.r.finish(h)
	defer func() {
		if p := recover(); p != nil { // a goroutine of its own: a panic must not take Traefik down
			h.err = errHedgePanic
			if h.resp != nil {
				h.resp.Body.Close()
				h.resp = nil
			}
		}
	}()
	resp, err := h.rt.RoundTrip(h.out)
	h.headers = time.Since(h.began)
	if err != nil {
		h.err = err
		return
	}
	h.resp = resp
	headersArrived(h.wd)
	if resp.StatusCode >= 400 || !isEventStream(resp.Header.Get("Content-Type")) {
		return // the request goroutine handles it like any attempt's answer
	}
	bp := streamBuffers.Get().(*[]byte) // the event relays' pool (stream.go); held keeps copies
	defer streamBuffers.Put(bp)
	buf := *bp
	scanned := 0
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if h.wd.idle != nil {
				h.wd.idle.Reset(h.wd.idleD) // h.wd.progress, inlined: it runs per read
			}
			h.held = append(h.held, buf[:n]...)
			for {
				end := eventBoundary(h.held[scanned:])
				if end < 0 {
					break
				}
				ev := h.held[scanned : scanned+end]
				scanned += end
				if !commitsNothing(ev) {
					h.ready = true
					return
				}
			}
			if len(h.held) > maxHold {
				h.ready = true
				return
			}
		}
		if rerr != nil {
			// The held bytes are replayed and the body ends the same way (replayBody):
			// relayStream classifies the failure, or a complete stream without output.
			h.rerr = rerr
			return
		}
	}
}

// failedEarly reports whether a finished run failed before its commit point in a way the
// attempt loop fails over: then the other run, if still going, may still win.
func failedEarly(h *hedgeRun) bool {
	if h.err != nil {
		return true
	}
	if isFailoverStatus(h.resp.StatusCode) {
		return true
	}
	return h.resp.StatusCode < 400 && isEventStream(h.resp.Header.Get("Content-Type")) && !h.ready
}

func (r *race) finish(h *hedgeRun) {
	r.mu.Lock()
	r.finished = append(r.finished, h)
	r.mu.Unlock()
	r.wake.raise()
}

// isFinished reports whether h finished; under r.mu.
func isFinished(r *race, h *hedgeRun) bool {
	for i := 0; i < len(r.finished); i++ {
		if r.finished[i] == h {
			return true
		}
	}
	return false
}

// waitFirst waits up to d for the first run to finish; true when none has.
func waitFirst(r *race, d time.Duration) bool {
	until := time.Now().Add(d)
	for {
		r.mu.Lock()
		n := len(r.finished)
		r.mu.Unlock()
		left := time.Until(until)
		if n > 0 || left <= 0 {
			return n == 0
		}
		r.wake.wait(left)
	}
}

// decide waits for the winner: the first run to finish with anything but an early failure,
// else, when every run failed early, the last one to fail. The runs' watchdogs bound it.
func decide(r *race) *hedgeRun {
	for {
		r.mu.Lock()
		var win *hedgeRun
		for i := 0; i < len(r.finished); i++ {
			if !failedEarly(r.finished[i]) {
				win = r.finished[i]
				break
			}
		}
		if win == nil && len(r.finished) == len(r.runs) {
			win = r.finished[len(r.finished)-1]
		}
		r.mu.Unlock()
		if win != nil {
			return win
		}
		r.wake.wait(0)
	}
}

// waitFor waits until h finished (it was cancelled: at once).
func (r *race) waitFor(h *hedgeRun) {
	for {
		r.mu.Lock()
		done := isFinished(r, h)
		r.mu.Unlock()
		if done {
			return
		}
		r.wake.wait(0)
	}
}

// stallAll ends every run: the client stopped reading.
func (r *race) stallAll() {
	r.mu.Lock()
	runs := append([]*hedgeRun(nil), r.runs...)
	r.mu.Unlock()
	for i := 0; i < len(runs); i++ {
		cancelStall(runs[i].wd)()
	}
}

// replayBody is a response body whose start was read by a hedged run: it gives the held
// bytes again, then ends as the upstream body ended (end) or reads on from rest. A type of
// its own rather than io.MultiReader: Yaegi v0.16.1 cannot pass an interpreted reader to
// the variadic io.MultiReader (docs/yaegi.md).
type replayBody struct {
	held []byte
	end  error
	rest io.ReadCloser
}

func (b *replayBody) Read(p []byte) (int, error) {
	if len(b.held) > 0 {
		n := copy(p, b.held)
		b.held = b.held[n:]
		return n, nil
	}
	if b.end != nil {
		return 0, b.end
	}
	return b.rest.Read(p)
}

func (b *replayBody) Close() error { return b.rest.Close() }
