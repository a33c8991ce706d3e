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

	// Three listeners (docs/design.md, "Listeners"): the internal API the plugin calls, the
	// admin API, /metrics. Each can be exposed (or not) on its own.
	listeners := []struct {
		name, env, addr string
		handler         http.Handler
	}{
		{"internal", config.EnvListen, cfg.Listen, a.Internal()},
		{"admin", config.EnvAdminListen, cfg.AdminListen, a.Admin()},
		{"metrics", config.EnvMetricsListen, cfg.MetricsListen, a.Metrics()},
	}
	servers := make([]*http.Server, 0, len(listeners))
	serveErr := make(chan error, len(listeners))
	defer func() {
		for _, srv := range servers {
			_ = srv.Close() // after a clean shutdown: a no-op
		}
	}()
	for _, l := range listeners {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("listening on %s (%s): %w", l.addr, l.env, err)
		}
		srv := newServer(l.handler, defaultServerTimeouts)
		servers = append(servers, srv)
		name := l.name
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("serving the %s listener: %w", name, err)
			}
		}()
		log.Info("controlsvc listening", "listener", l.name, "addr", ln.Addr().String())
	}
	log.Info("controlsvc started", "lease_ttl", cfg.LeaseTTL.String())
	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	allowance := shutdownAllowance(cfg)
	log.Info("controlsvc shutting down", "allowance", allowance.String())
	return shutdown(servers, a, allowance, log)
}

// shutdown stops gracefully (docs/design.md, "Shutdown"): the waits end first, answered 503
// shutting_down so that the plugin retries elsewhere; then the server stops accepting
// connections and lets the requests under way finish, report batches included (they release
// slots and bill), within allowance.
func shutdown(servers []*http.Server, a *app.App, allowance time.Duration, log *slog.Logger) error {
	a.BeginShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), allowance)
	defer cancel()
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		go func(srv *http.Server) {
			err := srv.Shutdown(ctx)
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				_ = srv.Close() // cut what is left: the plugin retries its reports
				errs <- fmt.Errorf("shutting down: %w", err)
				return
			}
			errs <- nil
		}(srv)
	}
	var first error
	for range servers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
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
