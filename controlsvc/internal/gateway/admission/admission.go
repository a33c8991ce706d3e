// Package admission decides the grants of POST /internal/v1/admit: key authentication,
// billing eligibility and the folded money hold, the group's model rules and fallbacks,
// account selection through breakers, sticky sessions and wait queues, hedges, and the
// settlement of a re-admission's failed attempt (package health says what it means for the
// account). It also answers which models a key may use and which account may count tokens.
// The gateway package serves it over HTTP; the contract is docs/design.md, "Internal API".
package admission

import (
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/metrics"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/ttlcache"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// Prices hands out the current price table (the gateway's PriceSource).
type Prices interface {
	Table() *usage.PriceTable
}

// Config is what an Admitter works with; every field but Catalogue, Changes, RouteWriter,
// ReadmitRefused and Log is required.
type Config struct {
	Store    *store.Store
	Slots    *slots.Slots
	Redis    redis.UniversalClient
	Holds    *holds.Holds // money held for requests in flight, in Redis
	Breakers *breaker.Breakers
	// Health settles a re-admission's failed attempt: marks and breakers.
	Health *health.Health
	Prices Prices
	// Catalogue names the model catalogue's models per platform (servable.go); nil = none,
	// and an account with an empty mapping serves every model.
	Catalogue ModelCatalogue
	Wait      WaitConfig // wait queues; zero fields take the defaults
	// Changes carries entity changes between instances (changes.go); nil: this instance's
	// own changes only, and the caches' TTL for the rest.
	Changes *changes.Bus
	// RouteWriter queues the admissions' routing explanations (route.go); nil: none kept.
	RouteWriter *routing.Writer
	// ReadmitRefused counts re-admissions whose failed account is not the grant's; nil: a
	// private counter.
	ReadmitRefused *metrics.Counter
	// BreakerPanics counts admissions that found every candidate's breaker open and tried
	// them all the same (breakers.go); nil: a private counter.
	BreakerPanics *metrics.Counter
	Log           *slog.Logger
}

// Admitter decides admissions. New starts its last-used batcher and its subscription to
// slot releases (which wakes waiting admissions); Close stops them.
type Admitter struct {
	store *store.Store
	slots *slots.Slots
	rdb   redis.UniversalClient
	waker *waker
	wait  WaitConfig
	log   *slog.Logger
	keys  *ttlcache.Cache[string, keyResult]
	// unknownKeys holds hashes of no key row (keyprobe.go), keyProbe batches the lookups
	// that find them.
	unknownKeys *ttlcache.Cache[string, struct{}]
	keyProbe    *keyProbe
	accounts    *ttlcache.Cache[groupKey, []groupAccount]
	touch       *toucher
	holds       *holds.Holds
	prices      Prices
	// catalogue and its per-platform sets (servable.go); catalogue nil = none.
	catalogue     ModelCatalogue
	catalogueSets *ttlcache.Cache[string, map[string]bool]
	routeWriter   *routing.Writer // nil: no routing explanations (route.go)

	readmitRefused *metrics.Counter
	breakerPanics  *metrics.Counter

	// stopping is closed by BeginShutdown (wait.go).
	stopping  chan struct{}
	stopOnce  sync.Once
	closeOnce sync.Once

	// breakers hold the (account, model) circuit breakers, which admission reads
	// (breakers.go); health settles failed attempts: marks and breakers.
	breakers *breaker.Breakers
	health   *health.Health

	changes *changes.Bus // nil: no other instance hears of changes (changes.go)
}

// New assembles an Admitter and starts its background work.
func New(cfg Config) *Admitter {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	readmitRefused := cfg.ReadmitRefused
	if readmitRefused == nil {
		readmitRefused = new(metrics.Counter)
	}
	breakerPanics := cfg.BreakerPanics
	if breakerPanics == nil {
		breakerPanics = new(metrics.Counter)
	}
	s := &Admitter{
		store:          cfg.Store,
		slots:          cfg.Slots,
		rdb:            cfg.Redis,
		waker:          newWaker(cfg.Redis, log),
		wait:           cfg.Wait.withDefaults(),
		log:            log,
		keys:           ttlcache.New[string, keyResult](CacheTTL, cacheMaxEntries).WithRefresh(cacheRefresh),
		accounts:       ttlcache.New[groupKey, []groupAccount](CacheTTL, cacheMaxEntries).WithRefresh(cacheRefresh),
		changes:        cfg.Changes,
		touch:          newToucher(cfg.Store, log),
		holds:          cfg.Holds,
		prices:         cfg.Prices,
		catalogue:      cfg.Catalogue,
		routeWriter:    cfg.RouteWriter,
		readmitRefused: readmitRefused,
		breakerPanics:  breakerPanics,
		unknownKeys:    ttlcache.New[string, struct{}](unknownKeyTTL, cacheMaxEntries),
		keyProbe:       newKeyProbe(cfg.Store.ExistingKeyHashes, probeInterval),
		stopping:       make(chan struct{}),
		breakers:       cfg.Breakers,
		health:         cfg.Health,
		catalogueSets:  ttlcache.New[string, map[string]bool](CacheTTL, 16),
	}
	if s.changes != nil {
		s.changes.Subscribe(s.applyChange)
	}
	go s.touch.run()
	return s
}

// Close stops the background work and flushes pending last-used updates. Safe to call
// twice.
func (s *Admitter) Close() {
	s.closeOnce.Do(func() {
		s.touch.close()
		s.waker.close()
	})
}
