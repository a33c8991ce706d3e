// Package gateway serves controlsvc's internal API for the Traefik plugin and wires its
// parts: admission (package admission: key auth, billing eligibility, slots, account
// choice), usage reports, whose pricing is package ledger's and whose account health is
// package health's, and lease renewal. The contract is docs/design.md, "Internal API"; the
// layout is docs/design.md, "Layout (controlsvc)".
package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/metrics"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/ttlcache"
)

// SecretHeader carries the plugin secret on every internal call.
const SecretHeader = "X-Poolgate-Secret"

// DefaultLeaseTTL is the life of a slot lease that is not renewed (docs/design.md).
const DefaultLeaseTTL = 60 * time.Second

// Body limits of the internal endpoints: an admission is small; a report batch holds up to
// 256 records with their usage objects and attempts.
const (
	maxAdmitBody  = 1 << 20
	maxReportBody = 32 << 20
	maxRenewBody  = 8 << 20
)

// Config configures the internal API.
type Config struct {
	PluginSecret string // required in X-Poolgate-Secret; empty refuses every call
	// PreviousPluginSecret is accepted too while the secret rotates; "" = only the current.
	PreviousPluginSecret string
	LeaseTTL             time.Duration // slot lease TTL; <= 0 means DefaultLeaseTTL
	Rules                RuleSource    // error passthrough rules; nil = no rule ever matches
	Prices               PriceSource   // model prices; nil = the shipped defaults
	// Catalogue names the model catalogue's models per platform (package admission); nil =
	// none, and an account with an empty mapping serves every model.
	Catalogue admission.ModelCatalogue
	Wait      admission.WaitConfig // wait queues; zero fields take the defaults
	// RateLimitCooldown is the rest of an account after a 429 that announces no reset;
	// <= 0 means health.DefaultRateLimitCooldown, above health.MaxRateLimitCooldown is capped.
	RateLimitCooldown time.Duration
	// ReservationTTL is the age at which the sweeper releases a reservation whose report
	// never came; <= 0 means store.DefaultReservationTTL.
	ReservationTTL time.Duration
	// WalletRefresh is how long admission trusts its Redis copy of a wallet before it reloads
	// it from PostgreSQL; <= 0 means holds.DefaultRefresh.
	WalletRefresh time.Duration
	// Metrics receives the service's counters (metrics.go); nil keeps them private.
	Metrics *metrics.Registry
	// Changes carries entity changes between instances to admission's caches; nil: this
	// instance's own changes only, and the caches' TTL for the rest.
	Changes *changes.Bus
}

// Service implements the internal API.
type Service struct {
	store  *store.Store
	rdb    redis.UniversalClient // the report batch's two pipelines (reports_redis.go)
	slots  *slots.Slots
	log    *slog.Logger
	secret [sha256.Size]byte
	noAuth bool // no secret configured: refuse everything
	// previous is the hash of the previous secret, accepted while hasPrevious.
	previous    [sha256.Size]byte
	hasPrevious bool

	// adm decides the admissions (package admission).
	adm *admission.Admitter
	// refusals samples the refusal log (logsample.go).
	refusals    *logSampler
	sweep       *ledger.Sweeper
	holds       *holds.Holds // money held for requests in flight, in Redis
	partitions  *ledger.PartitionKeeper
	pricer      *ledger.Pricer // prices report batches into usage records
	metrics     gatewayMetrics
	rules       RuleSource
	prices      PriceSource
	routes      *routing.Log // the requests' routing explanations not settled yet (route_settle.go)
	routeWriter *routing.Writer

	closeOnce sync.Once
	// beforeAnswer, in tests only, runs between a grant and its answer (admit_call.go), with
	// the request's context: it stands for a slow last step or a caller leaving right then.
	beforeAnswer func(context.Context)

	// health settles failed and answered attempts: marks and breakers.
	health *health.Health
}

// New assembles the service and starts its admission's background work (admission.New),
// its reservation sweeper and its partition keeper; Close stops them.
func New(st *store.Store, rdb redis.UniversalClient, cfg Config, log *slog.Logger) *Service {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = store.DefaultReservationTTL
	}
	s := &Service{
		store:       st,
		rdb:         rdb,
		slots:       slots.New(rdb, cfg.LeaseTTL),
		log:         log,
		secret:      sha256.Sum256([]byte(cfg.PluginSecret)),
		noAuth:      cfg.PluginSecret == "",
		previous:    sha256.Sum256([]byte(cfg.PreviousPluginSecret)),
		hasPrevious: cfg.PreviousPluginSecret != "",
		holds:       holds.New(rdb, st, cfg.ReservationTTL, cfg.WalletRefresh),
		partitions:  ledger.NewPartitionKeeper(st, ledger.PartitionInterval, log),
		rules:       cfg.Rules,
		prices:      cfg.Prices,
		metrics:     newGatewayMetrics(cfg.Metrics),
		routes:      routing.NewLog(rdb),
		refusals:    newLogSampler(),
	}
	if s.prices == nil {
		s.prices = defaultPrices{}
	}
	breakers := breaker.New(rdb)
	// Health's account marks reach admission's caches through s.adm, set below before any
	// request can mark an account.
	s.health = health.New(health.Config{Store: st, Breakers: breakers, Cooldown: cfg.RateLimitCooldown,
		Openings: s.metrics.breakerOpenings, Log: log,
		AccountChanged: func(ctx context.Context, id int64) { s.adm.AccountChanged(ctx, id) }})
	s.routeWriter = s.routes.NewWriter(log)
	s.adm = admission.New(admission.Config{Store: st, Slots: s.slots, Redis: rdb, Holds: s.holds,
		Breakers: breakers, Health: s.health, Prices: s.prices, Catalogue: cfg.Catalogue, Wait: cfg.Wait,
		Changes: cfg.Changes, RouteWriter: s.routeWriter, ReadmitRefused: s.metrics.readmitRefusedAccount,
		BreakerPanics: s.metrics.breakerPanics, Log: log})
	s.sweep = ledger.NewSweeper(s.holds, ledger.SweepInterval, log)
	terms := ledger.NewCachedTerms(st)
	if cfg.Changes != nil {
		cfg.Changes.Subscribe(terms.Changed)
	}
	s.pricer = ledger.NewPricer(terms, s.prices, log)
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	if err := s.holds.MarkEpoch(ctx); err != nil {
		// Lookup marks it on the first report batch instead.
		log.Warn("marking the holds epoch", "error", err)
	}
	cancel()
	go s.sweep.Run()
	go s.partitions.Run()
	return s
}

// BeginShutdown makes admission refuse new waits and ends the waits under way
// (admission.Admitter.BeginShutdown); reports and renewals go on. Safe to call twice.
func (s *Service) BeginShutdown() { s.adm.BeginShutdown() }

// AccountsChanged drops this process's cached account lists, all of them: for tests that
// write accounts in PostgreSQL directly. The admin API publishes targeted events instead.
func (s *Service) AccountsChanged() { s.adm.AccountsChanged() }

// KeysChanged forgets the unknown keys this process cached: the admin API calls it when a
// key is created (admission.Admitter.KeysChanged).
func (s *Service) KeysChanged() { s.adm.KeysChanged() }

// Register mounts the internal endpoints on r, each behind the plugin secret.
func (s *Service) Register(r *mux.Router) {
	r.Handle("/internal/v1/admit", s.requireSecret(s.countAdmissions(http.HandlerFunc(s.handleAdmit)))).Methods(http.MethodPost)
	r.Handle("/internal/v1/models", s.requireSecret(http.HandlerFunc(s.handleModels))).Methods(http.MethodPost)
	r.Handle("/internal/v1/reports", s.requireSecret(http.HandlerFunc(s.handleReports))).Methods(http.MethodPost)
	r.Handle("/internal/v1/renew", s.requireSecret(http.HandlerFunc(s.handleRenew))).Methods(http.MethodPost)
	r.Handle("/internal/v1/count-tokens", s.requireSecret(http.HandlerFunc(s.handleCountTokens))).Methods(http.MethodPost)
	r.Handle("/internal/v1/upstream-error", s.requireSecret(http.HandlerFunc(s.handleUpstreamError))).Methods(http.MethodPost)
}

// Close stops background work and flushes pending last-used updates. Safe to call twice.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		s.adm.Close()
		s.sweep.Close()
		s.partitions.Close()
		s.routeWriter.Close()
	})
}

// maxSecretHeader bounds the presented secret: longer values are refused before hashing
// (secrets are at most 256 bytes, config.MaxSecretBytes).
const maxSecretHeader = 256

// requireSecret answers 401 unless the request carries the plugin secret, the current or,
// during a rotation, the previous one. Both sides are hashed first and both secrets always
// compared, so the time taken says nothing about the guess.
func (s *Service) requireSecret(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented := r.Header.Get(SecretHeader)
		got := sha256.Sum256([]byte(presented))
		ok := subtle.ConstantTimeCompare(got[:], s.secret[:])
		prev := subtle.ConstantTimeCompare(got[:], s.previous[:])
		if s.hasPrevious {
			ok |= prev
		}
		if s.noAuth || len(presented) > maxSecretHeader || ok != 1 {
			writeAPIError(w, http.StatusUnauthorized, "authentication_error", "Invalid plugin secret")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loadTimeout bounds a detached Redis or PostgreSQL step (ttlcache.LoadTimeout, the caches'
// load bound).
const loadTimeout = ttlcache.LoadTimeout

// truncate cuts s to at most n bytes, for log fields and stored names.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

var errBodyTooLarge = errors.New("request body too large")

// decodeBody reads a JSON body of at most limit bytes into v.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBodyTooLarge
		}
		return err
	}
	return json.Unmarshal(body, v)
}
