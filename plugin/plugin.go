// Package plugin is the poolgate Traefik middleware. It runs interpreted by Yaegi inside
// Traefik, so it uses the standard library only and sticks to plain Go (docs/yaegi.md).
//
// The plugin owns the client connection for the AI endpoints: it validates the request,
// asks controlsvc for admission (one POST /internal/v1/admit per account choice), forwards
// to the granted upstream account itself through one shared http.Transport, fails over to
// another account before anything is written, streams the reply, extracts usage and hands
// one completion report per grant to a package-level batching sender. The contracts with
// controlsvc are in docs/design.md.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of the dynamic configuration (docs/design.md, "Plugin configuration").
const (
	defaultControlURL            = "http://127.0.0.1:8090"
	defaultMaxBodyBytes          = 64 << 20 // above the providers' own limits (Messages 32 MB, Responses about 50 MB)
	defaultMaxAccountSwitches    = 3
	defaultAdmissionTimeout      = "5s"
	defaultMaxWait               = "150s"
	defaultPingInterval          = "10s"
	defaultUpstreamHeaderTimeout = "600s"
	defaultFirstTokenTimeout     = "60s"
	defaultResponseHeaderTimeout = "300s"
	defaultSameAccountRetryMax   = "3s"
	defaultStreamIdleTimeout     = "180s"
	defaultRequestTimeout        = "30m"
	defaultDrainTimeout          = "30s"
	defaultWriteStallTimeout     = "60s"
)

// Sentinel configuration errors; New wraps them with the offending value.
var (
	errMissingSecret = errors.New("pluginSecret or pluginSecretFile is required")
	errBadControlURL = errors.New("must be an absolute http or https URL")
	errBadBodyLimit  = errors.New("maxBodyBytes must be positive")
	errBadSwitches   = errors.New("maxAccountSwitches must not be negative")
	errBadDuration   = errors.New("timeout must be a positive duration such as 5s")
	errBadOptional   = errors.New("timeout must be a duration such as 30s, or 0s for none")
)

// Config is the plugin's dynamic configuration. Traefik decodes the middleware's keys
// (controlURL, pluginSecret, …) into these fields, matching names without regard to case.
type Config struct {
	// ControlURL is one controlsvc base URL; ControlURLs, when set, wins: a comma-separated
	// list of instances, any of which can serve any call (controlurls.go).
	ControlURL   string `json:"controlURL,omitempty"`
	ControlURLs  string `json:"controlURLs,omitempty"`
	PluginSecret string `json:"pluginSecret,omitempty"`
	// PluginSecretFile names a file holding the secret instead (secret.go): Traefik logs
	// its configuration at debug level, the secret itself must not be in it.
	PluginSecretFile   string `json:"pluginSecretFile,omitempty"`
	MaxBodyBytes       int64  `json:"maxBodyBytes,omitempty"`
	MaxAccountSwitches int    `json:"maxAccountSwitches,omitempty"`
	// AdmissionTimeout bounds controlsvc's own work on an admit call; the call may take
	// MaxWait longer, the time a request may spend in wait queues (docs/design.md).
	AdmissionTimeout string `json:"admissionTimeout,omitempty"`
	// MaxWait is the wait budget sent with every admit call: controlsvc never keeps a
	// request in its wait queues longer; 0s means no waiting at all.
	MaxWait string `json:"maxWait,omitempty"`
	// PingInterval spaces the keep-alives a streaming request gets while it waits for
	// admission; 0s sends none.
	PingInterval          string `json:"pingInterval,omitempty"`
	UpstreamHeaderTimeout string `json:"upstreamHeaderTimeout,omitempty"`
	// FirstTokenTimeout bounds the time from sending an attempt to its first semantic
	// output on streaming requests (default 60s); 0s is none. A group may override it.
	FirstTokenTimeout string `json:"firstTokenTimeout,omitempty"`
	// ResponseHeaderTimeout bounds the time from sending a non-streaming attempt to its
	// response headers (default 300s); 0s is none. A group may override it. The shared
	// transport's UpstreamHeaderTimeout stays a larger backstop.
	ResponseHeaderTimeout string `json:"responseHeaderTimeout,omitempty"`
	// SameAccountRetryMax is the longest Retry-After a 429 or 503 may ask for and still be
	// retried once on the same account (retry.go); 0s turns same-account retries off.
	SameAccountRetryMax string `json:"sameAccountRetryMax,omitempty"`
	// StreamIdleTimeout bounds a silence of the upstream body; 0s is none. A group may
	// override it.
	StreamIdleTimeout string `json:"streamIdleTimeout,omitempty"`
	// RequestTimeout bounds a client request as a whole, every attempt included.
	RequestTimeout string `json:"requestTimeout,omitempty"`
	// DrainTimeout bounds how long an attempt is read on after its client left past the
	// commit point, to bill the usage the upstream reports; 0s cuts it at once.
	DrainTimeout string `json:"drainTimeout,omitempty"`
	// WriteStallTimeout bounds one write to the client: a client that stops reading for
	// longer loses its stream and its slots (stall.go); 0s is none.
	WriteStallTimeout string `json:"writeStallTimeout,omitempty"`
	// AllowPrivateUpstreams lets accounts reach loopback, link-local and private addresses
	// (dialguard.go); for tests and local runs only. Traefik decodes "true"/"1" into it.
	AllowPrivateUpstreams bool `json:"allowPrivateUpstreams,omitempty"`
}

// CreateConfig returns the defaults; Traefik overlays the configured keys on them.
func CreateConfig() *Config {
	return &Config{
		ControlURL:            defaultControlURL,
		MaxBodyBytes:          defaultMaxBodyBytes,
		MaxAccountSwitches:    defaultMaxAccountSwitches,
		AdmissionTimeout:      defaultAdmissionTimeout,
		MaxWait:               defaultMaxWait,
		PingInterval:          defaultPingInterval,
		UpstreamHeaderTimeout: defaultUpstreamHeaderTimeout,
		FirstTokenTimeout:     defaultFirstTokenTimeout,
		ResponseHeaderTimeout: defaultResponseHeaderTimeout,
		SameAccountRetryMax:   defaultSameAccountRetryMax,
		StreamIdleTimeout:     defaultStreamIdleTimeout,
		RequestTimeout:        defaultRequestTimeout,
		DrainTimeout:          defaultDrainTimeout,
		WriteStallTimeout:     defaultWriteStallTimeout,
	}
}

// Poolgate is one middleware instance. Instances are cheap: the transport, the controlsvc
// client, the report batcher and the lease renewer are package-level singletons, because
// Traefik calls New again for every instance on every configuration reload.
type Poolgate struct {
	next         http.Handler
	name         string
	maxBody      int64
	maxSwitches  int
	admitTimeout time.Duration
	maxWait      time.Duration // wait budget of one admit call
	pingInterval time.Duration // 0: no keep-alives
	firstToken   time.Duration // 0: none
	headers      time.Duration // responseHeaderTimeout of non-streaming attempts; 0: none
	retryMax     time.Duration // sameAccountRetryMax; 0: no same-account retry
	streamIdle   time.Duration // 0: none
	requestLimit time.Duration
	drain        time.Duration // 0: a committed attempt is cut when its client leaves; with requestLimit it bounds lease renewal (leaseCap)
	writeStall   time.Duration // 0: no stall watchdog
	control      *sharedControl
	transport    *http.Transport
}

// New validates the configuration and assembles an instance. It does no I/O and starts no
// goroutine.
func New(ctx context.Context, next http.Handler, cfg *Config, name string) (http.Handler, error) {
	if cfg == nil {
		cfg = CreateConfig()
	}
	secret, err := secretSpec(cfg)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: %w", name, err)
	}
	controlURLs, err := parseControlURLs(cfg.ControlURLs, cfg.ControlURL)
	if err != nil {
		if strings.TrimSpace(cfg.ControlURLs) != "" {
			return nil, fmt.Errorf("poolgate middleware %q: controlURLs %q: %w", name, cfg.ControlURLs, err)
		}
		return nil, fmt.Errorf("poolgate middleware %q: controlURL %q: %w", name, cfg.ControlURL, err)
	}
	if cfg.MaxBodyBytes <= 0 {
		return nil, fmt.Errorf("poolgate middleware %q: %w (got %d)", name, errBadBodyLimit, cfg.MaxBodyBytes)
	}
	if cfg.MaxAccountSwitches < 0 {
		return nil, fmt.Errorf("poolgate middleware %q: %w (got %d)", name, errBadSwitches, cfg.MaxAccountSwitches)
	}
	admitTimeout, err := parsePositiveDuration(cfg.AdmissionTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: admissionTimeout %q: %w", name, cfg.AdmissionTimeout, err)
	}
	maxWait, err := parseOptionalDuration(cfg.MaxWait)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: maxWait %q: %w", name, cfg.MaxWait, err)
	}
	pingInterval, err := parseOptionalDuration(cfg.PingInterval)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: pingInterval %q: %w", name, cfg.PingInterval, err)
	}
	headerTimeout, err := parsePositiveDuration(cfg.UpstreamHeaderTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: upstreamHeaderTimeout %q: %w", name, cfg.UpstreamHeaderTimeout, err)
	}
	firstToken, err := parseOptionalDuration(cfg.FirstTokenTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: firstTokenTimeout %q: %w", name, cfg.FirstTokenTimeout, err)
	}
	responseHeader, err := parseOptionalDuration(cfg.ResponseHeaderTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: responseHeaderTimeout %q: %w", name, cfg.ResponseHeaderTimeout, err)
	}
	retryMax, err := parseOptionalDuration(cfg.SameAccountRetryMax)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: sameAccountRetryMax %q: %w", name, cfg.SameAccountRetryMax, err)
	}
	streamIdle, err := parseOptionalDuration(cfg.StreamIdleTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: streamIdleTimeout %q: %w", name, cfg.StreamIdleTimeout, err)
	}
	requestLimit, err := parsePositiveDuration(cfg.RequestTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: requestTimeout %q: %w", name, cfg.RequestTimeout, err)
	}
	drain, err := parseOptionalDuration(cfg.DrainTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: drainTimeout %q: %w", name, cfg.DrainTimeout, err)
	}
	writeStall, err := parseOptionalDuration(cfg.WriteStallTimeout)
	if err != nil {
		return nil, fmt.Errorf("poolgate middleware %q: writeStallTimeout %q: %w", name, cfg.WriteStallTimeout, err)
	}
	return &Poolgate{
		next:         next,
		name:         name,
		maxBody:      cfg.MaxBodyBytes,
		maxSwitches:  cfg.MaxAccountSwitches,
		admitTimeout: admitTimeout,
		maxWait:      maxWait,
		pingInterval: pingInterval,
		firstToken:   firstToken,
		headers:      responseHeader,
		retryMax:     retryMax,
		streamIdle:   streamIdle,
		requestLimit: requestLimit,
		drain:        drain,
		writeStall:   writeStall,
		control:      controlFor(strings.Join(controlURLs, ","), secret),
		transport:    sharedTransport(headerTimeout, cfg.AllowPrivateUpstreams),
	}, nil
}

func parseControlURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errBadControlURL
	}
	return trimTrailingSlash(raw), nil
}

func parsePositiveDuration(raw string) (time.Duration, error) {
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		return 0, errBadDuration
	}
	return d, nil
}

// parseOptionalDuration reads a duration where "" and 0 mean none.
func parseOptionalDuration(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, errBadOptional
	}
	return d, nil
}

func trimTrailingSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
