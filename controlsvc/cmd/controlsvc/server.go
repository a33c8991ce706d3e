package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
)

// Server timeouts (docs/design.md, "Timeouts"). There is no server-wide WriteTimeout: an
// admit call may wait in the queues for up to config.WaitQueues.Longest (150 s by default)
// and must then still get its answer, so the admit handler sets its own write deadline
// (gateway, admit_call.go) and every other route gets serverTimeouts.routeWrite per request.
type serverTimeouts struct {
	readHeader time.Duration
	// read bounds reading a whole request, body included, against slow senders. It does not
	// bound a handler that runs longer: net/http lifts the read deadline once the body is
	// read (connReader.startBackgroundRead), and TestAdmitWaitOutlivesServerBounds holds it
	// to that.
	read time.Duration
	// routeWrite bounds the answer of every route but admit: admin calls, report batches,
	// renewals, upstream-error lookups, health and metrics.
	routeWrite time.Duration
	idle       time.Duration
}

// defaultServerTimeouts are the ones main serves with.
var defaultServerTimeouts = serverTimeouts{
	readHeader: readHeaderTimeout,
	read:       60 * time.Second,
	routeWrite: 60 * time.Second,
	idle:       120 * time.Second,
}

const (
	readHeaderTimeout = 10 * time.Second
	// startTimeout bounds connecting to PostgreSQL and Redis and migrating.
	startTimeout = 60 * time.Second
	// shutdownWork is the shutdown allowance on top of the longest wait: in-flight admits
	// finishing their Redis and PostgreSQL work, and report batches being settled.
	shutdownWork = 30 * time.Second
)

// newServer is the HTTP server main runs (with defaultServerTimeouts); tests serve through it
// too. It sets no WriteTimeout, on purpose (above).
func newServer(h http.Handler, t serverTimeouts) *http.Server {
	return &http.Server{
		Handler:           boundWrites(h, t.routeWrite),
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		IdleTimeout:       t.idle,
	}
}

// boundWrites gives every request a write deadline of d from its start, what a WriteTimeout
// of d would do, but per request: a handler that must answer later (admit) moves it.
func boundWrites(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An error means the writer cannot take deadlines (never for net/http's own).
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		next.ServeHTTP(w, r)
	})
}

// shutdownAllowance is how long a SIGTERM'd controlsvc waits for its requests to finish: it
// covers the longest wait of an admit call, although a shutdown ends waits at once
// (answered shutting_down), plus the work after it.
func shutdownAllowance(cfg config.Config) time.Duration {
	return cfg.Wait.Longest() + shutdownWork
}

// The plugin renews leases every 15 s with a 5 s bound (plugin/renew.go); a lease must
// outlive three such rounds, or the leases of live requests lapse between renewals.
const minSafeLeaseTTL = 3*15*time.Second + 5*time.Second

// warnBounds logs settings that break the rules of docs/design.md's timeout table without
// being invalid (tests use short values on purpose).
func warnBounds(cfg config.Config, log *slog.Logger) {
	if cfg.LeaseTTL < minSafeLeaseTTL {
		log.Warn("lease TTL is shorter than three plugin renewals: leases of live requests may lapse",
			"lease_ttl", cfg.LeaseTTL.String(), "want_at_least", minSafeLeaseTTL.String())
	}
}
