package plugin

import (
	"errors"
	"net/http"
	"sync"
	"time"
)

// Stuck and slow clients (docs/design.md, "Clients that stop reading"). A write to a client
// that stopped reading blocks once the socket buffers are full, and inside Traefik nothing
// can interrupt it: the writer Traefik hands the plugin (its recovery middleware's wrapper)
// has neither Unwrap nor SetWriteDeadline, so http.ResponseController cannot reach the
// connection. So every client write runs under a watchdog, a time.AfterFunc armed for the
// write (no select, docs/design.md "Writing plugin code"). When a write has been blocked
// for writeStallTimeout the watchdog trips:
//   - the request's lease is no longer renewed, so its slots expire within the lease TTL;
//   - the upstream attempt (or the admit call out during keep-alives) is cancelled;
//   - the connection's write deadline is set to now where the writer supports it (a plain
//     net/http server), which makes the blocked write fail at once;
//   - the exchange counts as client gone: when the write returns, the relay ends as for a
//     client that disconnected (499, client_gone) and nothing more is written to it.
//
// The deadline is set only when a write stalls, not rolled forward before every write: a
// rolling deadline costs a call per write and, left behind by the last write, would fail
// the terminal error frame the plugin writes after a long upstream silence.

// errClientStalled: a write to the client was blocked for longer than writeStallTimeout.
var errClientStalled = errors.New("client stopped reading")

// stallGuard watches the client writes of one exchange. The writers — the request
// goroutine, and the keep-alive timer while an admit call is out — never write at the same
// time (keepAlive.stop orders them), so the timer and tripped need no lock; the fields under
// mu are shared with the watchdog's own goroutine.
type stallGuard struct {
	limit  time.Duration // 0: no watchdog
	rw     http.ResponseWriter
	leases *renewer

	timer   *time.Timer // armed only while a write is in progress
	tripped bool        // a write stalled; seen by the writers
	writing bool        // a write is in progress (left set by a write that panicked)

	mu      sync.Mutex
	stalled bool
	closed  bool   // the exchange ended: the connection may serve another request
	leaseID string // the grant whose lease the request holds, "" before the first grant
	cancel  func() // ends the work in progress: the admit call or the upstream attempt
}

func newStallGuard(limit time.Duration, rw http.ResponseWriter, leases *renewer) *stallGuard {
	return &stallGuard{limit: limit, rw: rw, leases: leases}
}

// stallWrite writes p to the client and flushes it, under the watchdog. After a stall it
// writes nothing and returns errClientStalled, also when the stalled write itself
// completed in the end. A plain function, as writeClient and isClientGone: they run per
// read of a stream, and an interpreted method call costs about 5x a function call under
// Yaegi (docs/yaegi.md).
func stallWrite(g *stallGuard, p []byte) (int, error) {
	if g.tripped {
		return 0, errClientStalled
	}
	// The timer is armed and stopped inline: a method call per write costs µs under Yaegi.
	if g.limit > 0 {
		if g.timer == nil {
			g.timer = time.AfterFunc(g.limit, g.trip) // a method value made here (docs/design.md)
		} else {
			g.timer.Reset(g.limit)
		}
	}
	g.writing = true
	n, err := g.rw.Write(p)
	if err == nil {
		if f, ok := g.rw.(http.Flusher); ok {
			f.Flush()
		}
	}
	g.writing = false
	// The timer runs only while a write is in progress, so a timer that could not be
	// stopped fired during this write: it lasted writeStallTimeout or longer.
	if g.limit > 0 && !g.timer.Stop() {
		g.trip() // the timer's own call may still be on its way: make sure it all happened
		g.tripped = true
		return n, errClientStalled
	}
	return n, err
}

// trip runs once, when a write stalled.
func (g *stallGuard) trip() {
	defer func() { _ = recover() }() // the timer goroutine belongs to nobody
	g.mu.Lock()
	if g.stalled || g.closed {
		g.mu.Unlock()
		return
	}
	g.stalled = true
	if g.leaseID != "" {
		unregister(g.leases, g.leaseID)
	}
	cancel := g.cancel
	g.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	// Unblocks the write where the writer reaches the connection; ErrNotSupported in
	// Traefik, where the write stays blocked until the client reads or the connection dies
	// (at the latest at the entry point's writeTimeout).
	_ = http.NewResponseController(g.rw).SetWriteDeadline(time.Now())
}

// close stops the watchdog when the exchange ends; a timer left armed by a panicking
// write then does nothing.
func (g *stallGuard) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
	}
}

// onStall sets what a stall ends (the admit call or upstream attempt now in progress); it
// runs at once when the client already stalled.
func onStall(g *stallGuard, cancel func()) {
	g.mu.Lock()
	stalled := g.stalled
	if !stalled {
		g.cancel = cancel
	}
	g.mu.Unlock()
	if stalled {
		cancel()
	}
}

// hold registers the request's lease for renewal until the time until, replacing the lease
// of an earlier grant, unless the client stalled: a stalled request is never renewed.
func hold(g *stallGuard, l lease, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leaseID != "" && g.leaseID != l.GrantID {
		unregister(g.leases, g.leaseID)
	}
	g.leaseID = l.GrantID
	if g.stalled {
		return
	}
	register(g.leases, l, until)
}

// writeClient writes p to the client and flushes it (stallWrite).
func writeClient(x *exchange, p []byte) (int, error) {
	return stallWrite(x.stall, p)
}

// holdLease keeps the grant's slots alive while the request runs, at most until its cap
// (docs/design.md, POST /internal/v1/renew).
func holdLease(x *exchange, g *grant) {
	hold(x.stall, lease{GrantID: g.GrantID, UserID: g.UserID, AccountID: g.AccountID}, leaseCap(x))
}

// leaseCap is the time past which the request's lease is never renewed: its start plus
// every bound of its own (requestTimeout, drainTimeout) plus leaseCapMargin.
func leaseCap(x *exchange) time.Time {
	return x.start.Add(x.p.requestLimit + x.p.drain + leaseCapMargin)
}
