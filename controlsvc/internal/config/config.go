// Package config reads the control service's settings from the environment.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
)

// Environment variables read by FromEnv.
const (
	EnvDatabaseURL  = "POOLGATE_DATABASE_URL"
	EnvRedisURL     = "POOLGATE_REDIS_URL"
	EnvAdminToken   = "POOLGATE_ADMIN_TOKEN"
	EnvPluginSecret = "POOLGATE_PLUGIN_SECRET"
	EnvListen       = "POOLGATE_LISTEN"
	EnvLeaseTTL     = "POOLGATE_LEASE_TTL"
	EnvLogLevel     = "POOLGATE_LOG_LEVEL"
	// EnvRateLimitCooldown is how long an account rests after an upstream 429 that
	// announces no reset (no Retry-After, x-ratelimit-reset-* or anthropic-ratelimit-*-reset).
	EnvRateLimitCooldown = "POOLGATE_RATE_LIMIT_COOLDOWN"
	// EnvReservationTTL is how long a billing reservation whose report never came is kept
	// before the sweeper releases it (docs/billing.md).
	EnvReservationTTL = "POOLGATE_RESERVATION_TTL"
	// EnvBillingTimezone is the IANA time zone whose midnight resets subscriptions' daily
	// usage windows (docs/billing.md).
	EnvBillingTimezone = "POOLGATE_BILLING_TIMEZONE"
	// EnvPprofAddr, when set, serves net/http/pprof on that host:port (off by default; for
	// profiling only, never on a public interface: it has no authentication).
	EnvPprofAddr = "POOLGATE_PPROF_ADDR"
	// EnvAllowPrivateUpstreams=1 lets accounts use http and loopback, link-local or
	// private addresses (docs/design.md, "Upstream addresses"); for tests and local runs.
	EnvAllowPrivateUpstreams = "POOLGATE_ALLOW_PRIVATE_UPSTREAMS"
)

// Documented defaults.
const (
	// DefaultListen keeps the service off public interfaces unless asked: the internal API
	// must never be reachable from outside (docs/design.md).
	DefaultListen = "127.0.0.1:8090"
	// DefaultLeaseTTL is how long a slot lease lives without renewal; the plugin renews
	// every 15 s, so a crashed gateway frees its slots within a minute (docs/design.md).
	DefaultLeaseTTL = 60 * time.Second
	// DefaultLogLevel is one of debug, info, warn, error.
	DefaultLogLevel = "info"
	// The rest after a 429 without reset headers and its cap, as the gateway applies them
	// (gateway.DefaultRateLimitCooldown, gateway.MaxRateLimitCooldown; config does not
	// import the packages it configures, app's TestConfigDefaultsAreThePackages keeps the
	// values equal).
	DefaultRateLimitCooldown = 5 * time.Second
	MaxRateLimitCooldown     = 2 * time.Hour
	// DefaultReservationTTL stays above the latest a report can come (Traefik's
	// writeTimeout), so only the reservations of requests whose report will never come are
	// released (store.DefaultReservationTTL).
	DefaultReservationTTL = 40 * time.Minute
	// DefaultBillingTimezone is the zone of the daily windows.
	DefaultBillingTimezone = "UTC"
)

// minLeaseTTL rejects nonsensical values only. Production values must stay well above the
// plugin's 15 s renewal period; tests set a few seconds to watch leases expire.
const minLeaseTTL = time.Second

// minReservationTTL likewise: production values must stay above the plugin's
// requestTimeout (30 min by default), or a long request loses its reservation.
const minReservationTTL = time.Second

// Config is everything the control service needs to start.
type Config struct {
	DatabaseURL  string // PostgreSQL connection URL
	RedisURL     string // redis:// or rediss:// URL
	AdminToken   string // Bearer token of the admin API
	PluginSecret string // X-Poolgate-Secret the plugin sends to the internal API
	// PluginSecretPrevious is also accepted while the plugin secret rotates; "" = none.
	PluginSecretPrevious string
	Listen               string        // host:port of the internal API (and the probes, GET /v1/usage)
	AdminListen          string        // host:port of the admin API
	MetricsListen        string        // host:port of /metrics
	LeaseTTL             time.Duration // expiry of a concurrency slot lease
	LogLevel             string        // debug, info, warn or error
	// RateLimitCooldown is the rest of an account after a 429 without reset headers.
	RateLimitCooldown time.Duration
	Wait              WaitQueues // wait queue limits (wait.go)
	// ReservationTTL is the age at which the sweeper releases a reservation.
	ReservationTTL time.Duration
	// BillingLocation is the zone of subscriptions' daily windows (billing.SetLocation).
	BillingLocation *time.Location
	// PprofAddr is the host:port of the profiling listener; "" (the default) starts none.
	PprofAddr string
	// CredentialKeys encrypt the accounts' upstream credentials (credentials.go).
	CredentialKeys *credentials.Keyring
	// DB are the PostgreSQL session bounds (db.go).
	DB DBBounds
	// AllowPrivateUpstreams is EnvAllowPrivateUpstreams; the service warns when it is on.
	AllowPrivateUpstreams bool
}

// FromEnv reads the configuration from the environment, applies the defaults and validates
// the result. Errors name the offending variable and never echo a secret.
func FromEnv() (Config, error) {
	cfg := Config{
		DatabaseURL:   strings.TrimSpace(os.Getenv(EnvDatabaseURL)),
		RedisURL:      strings.TrimSpace(os.Getenv(EnvRedisURL)),
		Listen:        valueOr(os.Getenv(EnvListen), DefaultListen),
		AdminListen:   valueOr(os.Getenv(EnvAdminListen), DefaultAdminListen),
		MetricsListen: valueOr(os.Getenv(EnvMetricsListen), DefaultMetricsListen),
		LeaseTTL:      DefaultLeaseTTL,
		LogLevel:      strings.ToLower(valueOr(os.Getenv(EnvLogLevel), DefaultLogLevel)),
		PprofAddr:     strings.TrimSpace(os.Getenv(EnvPprofAddr)),
	}
	vars, err := cfg.readSecrets()
	if err != nil {
		return Config{}, err
	}
	if raw := strings.TrimSpace(os.Getenv(EnvAllowPrivateUpstreams)); raw != "" {
		// strconv.ParseBool's forms, the ones Traefik decodes into the plugin's bool too.
		if cfg.AllowPrivateUpstreams, err = strconv.ParseBool(raw); err != nil {
			return Config{}, fmt.Errorf("%s: %q is not a boolean (1 or 0)", EnvAllowPrivateUpstreams, raw)
		}
	}
	if cfg.Wait, err = waitQueuesFromEnv(); err != nil {
		return Config{}, err
	}
	if cfg.DB, err = dbBoundsFromEnv(); err != nil {
		return Config{}, err
	}
	cfg.RateLimitCooldown = DefaultRateLimitCooldown
	if raw := strings.TrimSpace(os.Getenv(EnvRateLimitCooldown)); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %q is not a duration (e.g. 5s)", EnvRateLimitCooldown, raw)
		}
		cfg.RateLimitCooldown = d
	}
	if cfg.BillingLocation, err = billingLocation(); err != nil {
		return Config{}, err
	}
	cfg.ReservationTTL = DefaultReservationTTL
	if raw := strings.TrimSpace(os.Getenv(EnvReservationTTL)); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %q is not a duration (e.g. 35m)", EnvReservationTTL, raw)
		}
		cfg.ReservationTTL = d
	}
	if raw := strings.TrimSpace(os.Getenv(EnvLeaseTTL)); raw != "" {
		ttl, err := time.ParseDuration(raw)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %q is not a duration (e.g. 60s)", EnvLeaseTTL, raw)
		}
		cfg.LeaseTTL = ttl
	}
	if err := cfg.validate(vars); err != nil {
		return Config{}, err
	}
	if cfg.CredentialKeys, err = CredentialKeysFromEnv(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// billingLocation loads POOLGATE_BILLING_TIMEZONE (zone data is embedded by package
// billing, so it resolves in a minimal image too).
func billingLocation() (*time.Location, error) {
	name := valueOr(os.Getenv(EnvBillingTimezone), DefaultBillingTimezone)
	// LoadLocation also takes "" and "Local", which would depend on the host.
	if name == "Local" {
		return nil, fmt.Errorf("%s: name an IANA time zone such as UTC or Europe/Berlin, not Local", EnvBillingTimezone)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not an IANA time zone (e.g. UTC, Europe/Berlin)", EnvBillingTimezone, name)
	}
	return loc, nil
}

func valueOr(v, def string) string {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	return v
}

// validate fails on the first bad setting, naming its variable.
func (c Config) validate(vars secretVars) error {
	if c.DatabaseURL == "" {
		return missing(EnvDatabaseURL)
	}
	// ParseConfig does no I/O; its errors redact the password.
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		return fmt.Errorf("%s: not a valid PostgreSQL connection string", EnvDatabaseURL)
	}
	if c.RedisURL == "" {
		return missing(EnvRedisURL)
	}
	if _, err := redis.ParseURL(c.RedisURL); err != nil {
		return fmt.Errorf("%s: not a valid Redis URL (want redis://[user:password@]host:port[/db])", EnvRedisURL)
	}
	if err := c.checkSecrets(vars); err != nil {
		return err
	}
	if err := c.checkListeners(); err != nil {
		return err
	}
	if c.PprofAddr != "" {
		if _, port, err := net.SplitHostPort(c.PprofAddr); err != nil || port == "" {
			return fmt.Errorf("%s: %q is not a host:port address", EnvPprofAddr, c.PprofAddr)
		}
	}
	if c.LeaseTTL < minLeaseTTL {
		return fmt.Errorf("%s: %s is too short, minimum is %s", EnvLeaseTTL, c.LeaseTTL, minLeaseTTL)
	}
	if c.RateLimitCooldown <= 0 || c.RateLimitCooldown > MaxRateLimitCooldown {
		return fmt.Errorf("%s: %s is out of range, want more than 0 and at most %s",
			EnvRateLimitCooldown, c.RateLimitCooldown, MaxRateLimitCooldown)
	}
	if c.ReservationTTL < minReservationTTL {
		return fmt.Errorf("%s: %s is too short, minimum is %s", EnvReservationTTL, c.ReservationTTL, minReservationTTL)
	}
	if err := c.Wait.validate(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%s: %q is not one of debug, info, warn, error", EnvLogLevel, c.LogLevel)
	}
	return nil
}

func missing(name string) error {
	return fmt.Errorf("%s is required", name)
}

// errWhitespace is returned for secrets with surrounding blanks, a common copy-paste mistake
// that would otherwise surface later as mysterious 401s.
var errWhitespace = errors.New("must not start or end with whitespace")
