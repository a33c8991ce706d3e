// Package app wires the control service: PostgreSQL (migrated at start), Redis, the admin
// API and the plugin-facing internal API, behind three handlers (Internal, Admin, Metrics),
// one per listener (docs/design.md, "Layout (controlsvc)").
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/adminapi"
	"github.com/poolgate/poolgate/controlsvc/internal/billing"
	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/catalogue"
	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/metrics"
	"github.com/poolgate/poolgate/controlsvc/internal/prices"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/rules"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// App is a running control service minus its HTTP server.
type App struct {
	log     *slog.Logger
	store   *store.Store
	redis   *redis.Client
	gateway *gateway.Service
	rules   *rules.Cache
	prices  *prices.Cache
	changes *changes.Bus
	// The three listeners' handlers (docs/design.md, "Listeners"): the plugin's internal
	// API with the probes and GET /v1/usage; the admin API; /metrics.
	internal, admin, metrics http.Handler
}

// New connects to PostgreSQL and Redis, migrates the schema and assembles the routes. On
// error everything opened so far is closed again.
func New(ctx context.Context, cfg config.Config) (*App, error) {
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	if cfg.AllowPrivateUpstreams {
		log.Warn("accounts may use http and loopback, link-local or private upstream addresses",
			"env", config.EnvAllowPrivateUpstreams)
	}
	if cfg.BillingLocation != nil {
		billing.SetLocation(cfg.BillingLocation) // the zone of subscriptions' daily windows
	}
	st, err := store.OpenWith(ctx, cfg.DatabaseURL, store.Bounds(cfg.DB))
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrating database: %w", err)
	}
	if err := prepareCredentials(ctx, st, cfg.CredentialKeys, log); err != nil {
		st.Close()
		return nil, err
	}
	rdb, err := openRedis(ctx, cfg.RedisURL)
	if err != nil {
		st.Close()
		return nil, err
	}

	rc := rules.NewCache(st, rdb, rules.DefaultRefresh, log)
	if err := rc.Load(ctx); err != nil {
		_ = rdb.Close()
		st.Close()
		return nil, err
	}
	pc, err := prices.NewCache(st, rdb, 0, log)
	if err == nil {
		err = pc.Load(ctx)
	}
	if err != nil { // neither cache is started yet: nothing to stop
		_ = rdb.Close()
		st.Close()
		return nil, err
	}
	rc.Start()
	pc.Start()
	bus := changes.New(rdb, log) // entity changes between instances' caches
	bus.Start()

	reg := metrics.NewRegistry()
	gw := gateway.New(st, rdb, gateway.Config{PluginSecret: cfg.PluginSecret, PreviousPluginSecret: cfg.PluginSecretPrevious, LeaseTTL: cfg.LeaseTTL, Rules: rc, Prices: pc,
		RateLimitCooldown: cfg.RateLimitCooldown, Wait: waitConfig(cfg.Wait), ReservationTTL: cfg.ReservationTTL,
		Metrics: reg, Catalogue: catalogueModels{}, Changes: bus}, log)
	admin := adminapi.New(adminapi.Options{
		Store:      st,
		Slots:      slots.New(rdb, cfg.LeaseTTL),
		AdminToken: cfg.AdminToken,
		Ready: []adminapi.ReadyCheck{
			{Name: "postgres", Check: st.Pool.Ping},
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		},
		Log:    log,
		Rules:  rc,
		Prices: pc,

		Accounts:              gw,
		Wallets:               holds.New(rdb, st, cfg.ReservationTTL, 0),
		Breakers:              breaker.New(rdb),
		Routes:                routing.NewLog(rdb),
		Unpriced:              prices.NewUnpricedLog(rdb),
		AllowPrivateUpstreams: cfg.AllowPrivateUpstreams,
		Changes:               bus,
	})
	internal := mux.NewRouter()
	admin.RegisterPublic(internal)
	gw.Register(internal)
	adminRouter := mux.NewRouter()
	admin.RegisterAdmin(adminRouter)
	// Prometheus scrapes controlsvc's own metrics listener; Traefik routes none of it.
	metricsRouter := mux.NewRouter()
	metricsRouter.Handle("/metrics", reg).Methods(http.MethodGet)
	return &App{log: log, store: st, redis: rdb, gateway: gw, rules: rc, prices: pc, changes: bus,
		internal: internal, admin: adminRouter, metrics: metricsRouter}, nil
}

// Compile-time guard: the slots package satisfies the admin API's load reader.
var _ adminapi.SlotLoads = (*slots.Slots)(nil)

// Compile-time guard: the gateway hears of the admin API's account changes.
var _ adminapi.AccountNotifier = (*gateway.Service)(nil)

// Internal serves the plugin's internal API (/internal/v1/…), the probes and GET /v1/usage.
func (a *App) Internal() http.Handler { return a.internal }

// Admin serves the admin API (/api/v1/admin/…) and the probes.
func (a *App) Admin() http.Handler { return a.admin }

// Metrics serves /metrics.
func (a *App) Metrics() http.Handler { return a.metrics }

// Handler serves every route on one handler, for tests: the internal API and the probes,
// then the admin API, then /metrics.
func (a *App) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, adminapi.AdminPrefix):
			a.admin.ServeHTTP(w, r)
		case r.URL.Path == "/metrics":
			a.metrics.ServeHTTP(w, r)
		default:
			a.internal.ServeHTTP(w, r)
		}
	})
}

// BeginShutdown starts a graceful stop: admit calls waiting in the queues, and new ones, are
// answered 503 shutting_down (gateway.Service.BeginShutdown); everything else goes on until
// the HTTP server has shut down and Close is called.
func (a *App) BeginShutdown() { a.gateway.BeginShutdown() }

// Logger is the service's structured logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Close stops background work and closes the connections. Call it after the HTTP server has
// shut down.
func (a *App) Close() {
	a.gateway.Close()
	a.changes.Close()
	a.rules.Close()
	a.prices.Close()
	if err := a.redis.Close(); err != nil {
		a.log.Warn("closing redis", "error", err)
	}
	a.store.Close()
}

// waitConfig maps the configured wait queues onto the gateway's, where a queue is turned
// off by a negative maximum (0 takes the default there).
func waitConfig(w config.WaitQueues) admission.WaitConfig {
	off := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	return admission.WaitConfig{
		UserMaxWaiters:     off(w.UserMax),
		UserTimeout:        w.UserTimeout,
		StickyMaxWaiters:   off(w.StickyMax),
		StickyTimeout:      w.StickyTimeout,
		FallbackMaxWaiters: off(w.AccountMax),
		FallbackTimeout:    w.AccountTimeout,
	}
}

func openRedis(ctx context.Context, url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		// The URL may carry a password: do not echo it.
		return nil, fmt.Errorf("parsing %s: not a valid Redis URL", config.EnvRedisURL)
	}
	redisTimeouts(opts)
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("connecting to redis at %s: %w", opts.Addr, err)
	}
	return rdb, nil
}

// Redis bounds unless the URL sets its own (dial_timeout, read_timeout, write_timeout);
// docs/design.md, "Timeouts". go-redis's defaults are the same values, named here so that the
// table can rely on them.
const (
	redisDialTimeout  = 5 * time.Second
	redisReadTimeout  = 3 * time.Second
	redisWriteTimeout = 3 * time.Second
)

// redisTimeouts fills in the bounds the URL left unset, and makes commands honour their
// context's deadline (an admission's work stops before the caller's deadline_ms).
func redisTimeouts(opts *redis.Options) {
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisDialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = redisReadTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = redisWriteTimeout
	}
	opts.ContextTimeoutEnabled = true
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%s: %w", config.EnvLogLevel, err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// catalogueModels names the model catalogue's models, shipped and imported, to the gateway
// (admission.ModelCatalogue): read at each call, so that an import reaches it at once.
type catalogueModels struct{}

func (catalogueModels) Models(platform string) []string { return catalogue.Models(platform) }
