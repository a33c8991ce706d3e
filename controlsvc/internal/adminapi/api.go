// Package adminapi serves the admin REST API (/api/v1/admin, Bearer admin token) and the
// health probes (/healthz, /readyz). The plugin-facing internal API lives in package gateway.
package adminapi

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// AdminPrefix is the path prefix of every admin endpoint.
const AdminPrefix = "/api/v1/admin"

// SlotLoads reports the live slots and waiters of each id's set. kind is "user" or
// "account"; ids without live slots may be missing from the map.
type SlotLoads interface {
	Loads(ctx context.Context, kind string, ids []int64) (map[int64]slots.Load, error)
}

// ReadyCheck is one dependency /readyz probes.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options are the API's dependencies.
type Options struct {
	Store      *store.Store
	Slots      SlotLoads
	AdminToken string
	Ready      []ReadyCheck
	Log        *slog.Logger
	Rules      ChangeNotifier // told after every rule write; nil = nobody to tell
	Prices     ChangeNotifier // told after every price write; nil = nobody to tell

	// Accounts is told after every account write (e.g. the gateway's account cache);
	// nil = nobody to tell.
	Accounts AccountNotifier
	// Breakers shows and clears the accounts' breakers (accounts_state.go); nil = none.
	Breakers Breakers

	// Routes reads the routing explanations of requests not settled yet (GET
	// /usage/{request_id}); nil = only settled ones are shown.
	Routes RouteReader

	// Unpriced lists the unpriced models asked for (GET /prices/unpriced); nil = none.
	Unpriced UnpricedReader

	// Wallets is told, after an admin change of a balance, a subscription or a key's quota,
	// which Redis copies of money admission must reload (package holds); nil = none.
	Wallets WalletInvalidator

	// AllowPrivateUpstreams accepts http and loopback/private base_urls (upstreams.go).
	AllowPrivateUpstreams bool

	// Changes carries the change of each written key, user, group and account to every
	// instance's caches (changes.go); nil = this process's notifiers only.
	Changes *changes.Bus
}

// API serves the admin endpoints and the probes.
type API struct {
	wallets   WalletInvalidator
	st        *store.Store
	slots     SlotLoads
	tokenHash [sha256.Size]byte
	ready     []ReadyCheck
	log       *slog.Logger
	rules     ChangeNotifier
	prices    ChangeNotifier

	accounts AccountNotifier
	breakers Breakers
	routes   RouteReader
	unpriced UnpricedReader

	changes      *changes.Bus   // Options.Changes
	keyUsages    *keyUsageCache // GET /v1/usage's answers and refusals
	allowPrivate bool           // Options.AllowPrivateUpstreams
}

// New assembles the API; it does no I/O.
func New(o Options) *API {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	return &API{
		st:        o.Store,
		slots:     o.Slots,
		tokenHash: sha256.Sum256([]byte(o.AdminToken)),
		ready:     o.Ready,
		log:       log,
		rules:     o.Rules,
		prices:    o.Prices,

		accounts: o.Accounts,
		wallets:  o.Wallets,
		breakers: o.Breakers,
		routes:   o.Routes,
		unpriced: o.Unpriced,

		changes:      o.Changes,
		keyUsages:    newKeyUsageCache(),
		allowPrivate: o.AllowPrivateUpstreams,
	}
}

// Register mounts everything on one router: RegisterPublic and RegisterAdmin. Tests use it;
// controlsvc serves the two on separate listeners.
func (a *API) Register(r *mux.Router) {
	a.RegisterPublic(r)
	a.mountAdmin(r)
}

// RegisterProbes mounts /healthz and /readyz, and a JSON 404 for unknown paths unless r
// already has a NotFoundHandler.
func (a *API) RegisterProbes(r *mux.Router) {
	if r.NotFoundHandler == nil {
		r.NotFoundHandler = http.HandlerFunc(notFound)
	}
	r.HandleFunc("/healthz", a.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", a.readyz).Methods(http.MethodGet, http.MethodHead)
}

// RegisterPublic mounts the probes and the one public read route on the internal
// listener, which Traefik reaches: a gateway key's own usage, authenticated by the key.
func (a *API) RegisterPublic(r *mux.Router) {
	a.RegisterProbes(r)
	r.Handle(KeyUsagePath, a.logRequests(byMethod{http.MethodGet: a.keyUsage}))
}

// RegisterAdmin mounts the probes and the admin API under AdminPrefix, for the admin
// listener.
func (a *API) RegisterAdmin(r *mux.Router) {
	a.RegisterProbes(r)
	a.mountAdmin(r)
}

func (a *API) mountAdmin(r *mux.Router) {
	admin := r.PathPrefix(AdminPrefix).Subrouter()
	admin.Use(a.logRequests, a.requireAdmin)
	// Unknown admin paths answer in the API's error format, after auth, so the route table
	// is not revealed to anonymous callers.
	admin.NotFoundHandler = a.logRequests(a.requireAdmin(http.HandlerFunc(notFound)))

	// Methods are dispatched by byMethod rather than mux's Methods matcher: with a
	// subrouter NotFoundHandler, mux v1.8.1 answers a wrong method with 404, not 405.
	const id = "/{id:[0-9]+}"
	admin.Handle("/users", byMethod{http.MethodGet: a.listUsers, http.MethodPost: a.createUser})
	admin.Handle("/users"+id, byMethod{http.MethodGet: a.getUser, http.MethodPatch: a.patchUser})
	admin.Handle("/users"+id+"/balance", byMethod{http.MethodPost: a.adjustBalance})
	admin.Handle("/users"+id+"/balance-adjustments", byMethod{http.MethodGet: a.listBalanceAdjustments})
	admin.Handle("/users"+id+"/group-rates", byMethod{http.MethodGet: a.listUserGroupRates})
	admin.Handle("/users"+id+"/group-rates/{group_id:[0-9]+}", byMethod{
		http.MethodPut: a.putUserGroupRate, http.MethodDelete: a.deleteUserGroupRate,
	})
	admin.Handle("/subscriptions", byMethod{http.MethodGet: a.listSubscriptions, http.MethodPost: a.createSubscription})
	admin.Handle("/subscriptions"+id, byMethod{
		http.MethodGet: a.getSubscription, http.MethodPatch: a.patchSubscription, http.MethodDelete: a.cancelSubscription,
	})
	admin.Handle("/groups", byMethod{http.MethodGet: a.listGroups, http.MethodPost: a.createGroup})
	admin.Handle("/groups"+id, byMethod{http.MethodGet: a.getGroup, http.MethodPatch: a.patchGroup})
	admin.Handle("/accounts", byMethod{http.MethodGet: a.listAccounts, http.MethodPost: a.createAccount})
	admin.Handle("/accounts"+id, byMethod{
		http.MethodGet: a.getAccount, http.MethodPatch: a.patchAccount, http.MethodDelete: a.deleteAccount,
	})
	admin.Handle("/accounts"+id+"/clear-state", byMethod{http.MethodPost: a.clearAccountState})
	admin.Handle("/api-keys", byMethod{http.MethodGet: a.listAPIKeys, http.MethodPost: a.createAPIKey})
	admin.Handle("/api-keys"+id, byMethod{
		http.MethodGet: a.getAPIKey, http.MethodPatch: a.patchAPIKey, http.MethodDelete: a.deleteAPIKey,
	})
	admin.Handle("/usage", byMethod{http.MethodGet: a.listUsage})
	admin.Handle("/usage/summary", byMethod{http.MethodGet: a.usageSummary}) // before /usage/{request_id}
	admin.Handle("/usage/{request_id}", byMethod{http.MethodGet: a.getUsage})
	admin.Handle("/concurrency", byMethod{http.MethodGet: a.concurrency})
	admin.Handle("/error-passthrough-rules", byMethod{http.MethodGet: a.listRules, http.MethodPost: a.createRule})
	admin.Handle("/error-passthrough-rules"+id, byMethod{
		http.MethodGet: a.getRule, http.MethodPatch: a.patchRule, http.MethodDelete: a.deleteRule,
	})
	admin.Handle("/prices", byMethod{http.MethodGet: a.listPrices})
	admin.Handle("/prices/resolve", byMethod{http.MethodGet: a.resolvePrice})
	admin.Handle("/prices/import", byMethod{http.MethodPost: a.importPrices})  // before /prices/{model}
	admin.Handle("/prices/unpriced", byMethod{http.MethodGet: a.listUnpriced}) // before /prices/{model}
	admin.Handle("/prices/{model:.+}", byMethod{http.MethodPut: a.putPrice, http.MethodDelete: a.deletePrice})
}

// byMethod routes one path by HTTP method; other methods get 405 with an Allow header.
type byMethod map[string]http.HandlerFunc

func (m byMethod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := m[r.Method]; ok {
		h(w, r)
		return
	}
	allowed := make([]string, 0, len(m))
	for method := range m {
		allowed = append(allowed, method)
	}
	sort.Strings(allowed)
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	methodNotAllowed(w, r)
}
