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

// Exit codes.
const (
	exitRuntime = 1
	exitConfig  = 2
)

func main() {
	if len(os.Args) > 1 { // a maintenance command (commands.go)
		os.Exit(runCommand(os.Args[1:], os.Stdout, os.Stderr))
	}
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
	warnBounds(cfg, log)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s (%s): %w", cfg.Listen, config.EnvListen, err)
	}
	srv := newServer(a.Handler(), defaultServerTimeouts)
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
	allowance := shutdownAllowance(cfg)
	log.Info("controlsvc shutting down", "allowance", allowance.String())
	return shutdown(srv, a, allowance, log)
}

// shutdown stops gracefully (docs/design.md, "Shutdown"): the waits end first, answered 503
// shutting_down so that the plugin retries elsewhere; then the server stops accepting
// connections and lets the requests under way finish, report batches included (they release
// slots and bill), within allowance.
func shutdown(srv *http.Server, a *app.App, allowance time.Duration, log *slog.Logger) error {
	a.BeginShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), allowance)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close() // cut what is left: the plugin retries its reports
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
