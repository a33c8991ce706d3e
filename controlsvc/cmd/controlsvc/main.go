// Command controlsvc is poolgate's control service: the admin REST API and the internal API
// the Traefik plugin calls for admission, usage reports and lease renewal. It is configured
// from the environment; see package config.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/app"
	"github.com/poolgate/poolgate/controlsvc/internal/config"
)

// Server timeouts. No response of this service streams: admin calls and admissions are
// short, report batches are bounded in size.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	// startTimeout bounds connecting to PostgreSQL and Redis and migrating.
	startTimeout = 60 * time.Second
	// shutdownTimeout lets in-flight requests (and their usage reports) finish.
	shutdownTimeout = 20 * time.Second
)

// Exit codes.
const (
	exitRuntime = 1
	exitConfig  = 2
)

func main() {
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlsvc: configuration error: %v\n", err)
		os.Exit(exitConfig)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "controlsvc: %v\n", err)
		os.Exit(exitRuntime)
	}
}

func run(cfg config.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	a, err := app.New(startCtx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("starting: %w", err)
	}
	defer a.Close()
	log := a.Logger()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s (%s): %w", cfg.Listen, config.EnvListen, err)
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("controlsvc listening", "addr", ln.Addr().String(), "lease_ttl", cfg.LeaseTTL.String())
	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("controlsvc shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("controlsvc stopped")
	return nil
}

// servePprof serves the runtime profiles on their own listener (POOLGATE_PPROF_ADDR), apart
// from the API's mux, so that profiling is only reachable where the operator put it. A
// failure to listen is logged, not fatal: profiling is a diagnostic aid.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: readHeaderTimeout}
	log.Info("pprof listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil {
		log.Error("pprof listener stopped", "addr", addr, "err", err)
	}
}
