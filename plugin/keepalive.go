package plugin

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Keep-alive while a streaming request waits for admission (docs/design.md, "Redis").
// controlsvc may hold an admit call for a long time (wait queues); a streaming client would
// see nothing, and proxies or the client itself may give up. So while the call is out, a
// keep-alive goes to the client every ping interval. The first one commits the response:
// HTTP 200 with text/event-stream. From then on every error is a terminal in-stream error
// (writeStreamError), and the upstream stream that follows is passed on without a second
// status line (commitHeaders).
//
// The pings come from a time.AfterFunc that re-arms itself, not from a select in the request
// goroutine (docs/yaegi.md: Yaegi races concurrent executions of one
// select statement). A mutex orders them with the request goroutine: stop takes it, so that
// once stop returns no ping is being written and none ever will be.

var (
	// openAIKeepAlive is an SSE comment line with no blank line after it: a comment followed
	// by a blank line dispatches an empty event, which the official OpenAI SDKs have failed
	// on ("unexpected end of JSON input"). Whatever comes next (an event or another
	// keep-alive) starts on a fresh line.
	openAIKeepAlive = []byte(": keep-alive\n")
	// anthropicKeepAlive is Anthropic's own ping event
	// (https://docs.anthropic.com/en/api/messages-streaming#ping-events).
	anthropicKeepAlive = []byte("event: ping\ndata: {\"type\": \"ping\"}\n\n")
)

// keepAliveFrame is the keep-alive of path's protocol.
func keepAliveFrame(path string) []byte {
	if path == pathMessages {
		return anthropicKeepAlive
	}
	return openAIKeepAlive
}

// keepAlive writes keep-alives to one client until stopped. Its writes run under the
// exchange's stall watchdog (stall.go): a ping blocked for writeStallTimeout ends the admit
// call and keeps no lease alive.
type keepAlive struct {
	rw        http.ResponseWriter // the writer Traefik handed in (see flush)
	guard     *stallGuard         // writes and flushes rw
	ctx       context.Context     // the client's request: no ping after it ended
	frame     []byte
	interval  time.Duration
	requestID string

	mu        sync.Mutex
	timer     *time.Timer
	stopped   bool
	committed bool // the status line and headers went out
	broken    bool // a write failed: the client is gone
}

// startKeepAlive arms the first ping. committed says that an earlier keep-alive of this
// request already sent the status line.
func startKeepAlive(ctx context.Context, rw http.ResponseWriter, guard *stallGuard, path, requestID string,
	interval time.Duration, committed bool) *keepAlive {
	k := &keepAlive{
		rw:        rw,
		guard:     guard,
		ctx:       ctx,
		frame:     keepAliveFrame(path),
		interval:  interval,
		requestID: requestID,
		committed: committed,
	}
	k.mu.Lock()
	k.timer = time.AfterFunc(interval, k.fired) // a method value: a closure costs several times more (docs/yaegi.md)
	k.mu.Unlock()
	return k
}

// fired is the timer's function: tick.
func (k *keepAlive) fired() { tick(k) }

// tick writes one keep-alive and re-arms the timer.
func tick(k *keepAlive) {
	k.mu.Lock()
	defer k.mu.Unlock()
	// The timer goroutine belongs to nobody: a panicking writer must not take Traefik down.
	defer func() {
		if r := recover(); r != nil {
			k.broken = true
		}
	}()
	if k.stopped || k.broken || k.ctx.Err() != nil {
		return
	}
	if !k.committed {
		h := k.rw.Header()
		h.Del("Content-Length")
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		h.Set(headerRequestID, k.requestID)
		k.committed = true
		k.rw.WriteHeader(http.StatusOK)
	}
	if _, err := stallWrite(k.guard, k.frame); err != nil {
		k.broken = true
		return
	}
	k.timer.Reset(k.interval)
}

// stop ends the pings for good and reports whether they committed the response. When it
// returns, no ping is being written; a timer that fires later finds stopped set.
func (k *keepAlive) stop() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	k.timer.Stop()
	return k.committed
}

// admitWithKeepAlive makes one admit call, with keep-alives to a streaming client while it
// is out. It starts none when the request does not stream, when pings are off, or when the
// client already got more than keep-alives. A stalled client ends the call: controlsvc then
// undoes a grant it was about to give.
func admitWithKeepAlive(x *exchange, ar *admitRequest) (*grant, *rejection, error) {
	ctx, cancel := context.WithCancel(x.req.Context())
	defer cancel()
	onStall(x.stall, cancel)
	k := startPings(x)
	g, rej, err := x.p.control.client.admit(ctx, admitBound(x.p), ar)
	stopPings(x, k)
	return g, rej, err
}

// startPings starts keep-alives to a streaming client while the request waits (an admit
// call, a same-account retry's wait); nil when the request does not stream, pings are off,
// or the client already got more than keep-alives.
func startPings(x *exchange) *keepAlive {
	if !x.info.stream || x.p.pingInterval <= 0 || (x.written && !x.keepAliveOnly) {
		return nil
	}
	return startKeepAlive(x.req.Context(), x.rw, x.stall, x.path, x.requestID, x.p.pingInterval, x.written)
}

// stopPings stops k (nil: none) and records a response its pings committed.
func stopPings(x *exchange, k *keepAlive) {
	if k != nil && k.stop() && !x.written {
		x.written = true
		x.keepAliveOnly = true
		x.status = http.StatusOK
	}
}
