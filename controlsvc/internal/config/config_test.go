package config

import (
	"strings"
	"testing"
	"time"
)

// validEnv is a complete, valid environment; cases override single variables.
var validEnv = map[string]string{
	EnvDatabaseURL:   "postgres://poolgate:s3cretpw@127.0.0.1:5432/poolgate?sslmode=disable",
	EnvRedisURL:      "redis://:redispw@127.0.0.1:6379/0",
	EnvAdminToken:    "admin-token-123-0123456789abcdef0123",
	EnvPluginSecret:  "plugin-secret-456-0123456789abcdef012",
	EnvListen:        "",
	EnvAdminListen:   "",
	EnvMetricsListen: "",

	EnvAdminTokenFile: "", EnvPluginSecretFile: "",
	EnvPluginSecretPrevious: "", EnvPluginSecretPreviousFile: "",
	EnvLeaseTTL: "",
	EnvLogLevel: "",

	EnvRateLimitCooldown: "",
	EnvReservationTTL:    "",
	EnvBillingTimezone:   "",
	EnvPprofAddr:         "",

	EnvAllowPrivateUpstreams: "",

	EnvUserWaitMax: "", EnvUserWaitTimeout: "", EnvStickyWaitMax: "", EnvStickyWaitTimeout: "",
	EnvAccountWaitMax: "", EnvAccountWaitTimeout: "",

	EnvCredentialKey: testCredentialKey, EnvCredentialKeyFile: "",
	EnvCredentialKeyPrevious: "", EnvCredentialKeyPreviousFile: "",
	EnvDBStatementTimeout: "", EnvDBIdleInTransactionTimeout: "",
}

func setEnv(t *testing.T, overrides map[string]string) {
	t.Helper()
	for k, v := range validEnv {
		t.Setenv(k, v)
	}
	for k, v := range overrides {
		t.Setenv(k, v)
	}
}

// mustFromEnv is FromEnv over validEnv plus overrides; an error fails the test.
func mustFromEnv(t *testing.T, overrides map[string]string) Config {
	t.Helper()
	setEnv(t, overrides)
	cfg, err := FromEnv()
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	return cfg
}

// fromEnvError is FromEnv over validEnv plus overrides, which must fail naming wantVar and
// containing wantText. It returns the message.
func fromEnvError(t *testing.T, overrides map[string]string, wantVar, wantText string) string {
	t.Helper()
	setEnv(t, overrides)
	_, err := FromEnv()
	if err == nil {
		t.Fatal("FromEnv() succeeded, want an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, wantVar) || !strings.Contains(msg, wantText) {
		t.Errorf("error %q, want it to name %s and contain %q", msg, wantVar, wantText)
	}
	return msg
}

func TestFromEnvDefaults(t *testing.T) {
	cfg := mustFromEnv(t, nil)
	want := Config{
		DatabaseURL:   validEnv[EnvDatabaseURL],
		RedisURL:      validEnv[EnvRedisURL],
		AdminToken:    validEnv[EnvAdminToken],
		PluginSecret:  validEnv[EnvPluginSecret],
		Listen:        DefaultListen,
		AdminListen:   DefaultAdminListen,
		MetricsListen: DefaultMetricsListen,
		LeaseTTL:      DefaultLeaseTTL,
		LogLevel:      DefaultLogLevel,

		RateLimitCooldown: DefaultRateLimitCooldown,
		Wait:              DefaultWaitQueues(),
		ReservationTTL:    DefaultReservationTTL,
		BillingLocation:   time.UTC,
		DB:                DBBounds{Statement: 30 * time.Second, IdleInTransaction: 10 * time.Second},
	}
	if cfg.CredentialKeys == nil || cfg.CredentialKeys.CurrentID() != testCredentialKeyID {
		t.Fatalf("CredentialKeys = %+v, want key id %s", cfg.CredentialKeys, testCredentialKeyID)
	}
	want.CredentialKeys = cfg.CredentialKeys
	if cfg != want {
		t.Errorf("FromEnv() = %+v, want %+v", cfg, want)
	}
}

func TestFromEnvOverrides(t *testing.T) {
	cfg := mustFromEnv(t, map[string]string{
		EnvListen:   "0.0.0.0:9000",
		EnvLeaseTTL: "90s",
		EnvLogLevel: "DEBUG",

		EnvRateLimitCooldown: "30s",
		EnvReservationTTL:    "40m",
		EnvPprofAddr:         "127.0.0.1:6060",

		EnvDBStatementTimeout:         "45s",
		EnvDBIdleInTransactionTimeout: "1500ms",
	})
	if cfg.DB != (DBBounds{Statement: 45 * time.Second, IdleInTransaction: 1500 * time.Millisecond}) {
		t.Errorf("FromEnv().DB = %+v, want statement 45s, idle in transaction 1.5s", cfg.DB)
	}
	if cfg.Listen != "0.0.0.0:9000" || cfg.LeaseTTL != 90*time.Second || cfg.LogLevel != "debug" ||
		cfg.RateLimitCooldown != 30*time.Second || cfg.ReservationTTL != 40*time.Minute ||
		cfg.PprofAddr != "127.0.0.1:6060" {
		t.Errorf("FromEnv() = %+v, want listen 0.0.0.0:9000, ttl 90s, level debug, rate limit cooldown 30s", cfg)
	}
}

func TestFromEnvErrors(t *testing.T) {
	tests := []struct {
		name     string
		give     map[string]string
		wantVar  string // the error must name this variable
		wantText string // and contain this text
	}{
		{"database url missing", map[string]string{EnvDatabaseURL: ""}, EnvDatabaseURL, "required"},
		{"database url blank", map[string]string{EnvDatabaseURL: "   "}, EnvDatabaseURL, "required"},
		{"database url garbage", map[string]string{EnvDatabaseURL: "postgres://u:pw@host:notaport/db"}, EnvDatabaseURL, "not a valid"},
		{"redis url missing", map[string]string{EnvRedisURL: ""}, EnvRedisURL, "required"},
		{"redis url wrong scheme", map[string]string{EnvRedisURL: "http://127.0.0.1:6379"}, EnvRedisURL, "not a valid"},
		{"admin token missing", map[string]string{EnvAdminToken: ""}, EnvAdminToken, "required"},
		{"admin token padded", map[string]string{EnvAdminToken: " tok "}, EnvAdminToken, "whitespace"},
		{"plugin secret missing", map[string]string{EnvPluginSecret: ""}, EnvPluginSecret, "required"},
		{"listen without port", map[string]string{EnvListen: "localhost"}, EnvListen, "host:port"},
		{"pprof without port", map[string]string{EnvPprofAddr: "localhost"}, EnvPprofAddr, "host:port"},
		{"lease ttl not a duration", map[string]string{EnvLeaseTTL: "sixty"}, EnvLeaseTTL, "not a duration"},
		{"lease ttl bare number", map[string]string{EnvLeaseTTL: "60"}, EnvLeaseTTL, "not a duration"},
		{"lease ttl too short", map[string]string{EnvLeaseTTL: "10ms"}, EnvLeaseTTL, "too short"},
		{"lease ttl negative", map[string]string{EnvLeaseTTL: "-5s"}, EnvLeaseTTL, "too short"},
		{"log level unknown", map[string]string{EnvLogLevel: "verbose"}, EnvLogLevel, "not one of"},
		{"rate limit cooldown not a duration", map[string]string{EnvRateLimitCooldown: "5"}, EnvRateLimitCooldown, "not a duration"},
		{"rate limit cooldown zero", map[string]string{EnvRateLimitCooldown: "0s"}, EnvRateLimitCooldown, "out of range"},
		{"rate limit cooldown above two hours", map[string]string{EnvRateLimitCooldown: "3h"}, EnvRateLimitCooldown, "out of range"},
		{"reservation ttl not a duration", map[string]string{EnvReservationTTL: "35"}, EnvReservationTTL, "not a duration"},
		{"reservation ttl too short", map[string]string{EnvReservationTTL: "0s"}, EnvReservationTTL, "too short"},
		{"statement timeout bare number", map[string]string{EnvDBStatementTimeout: "30"}, EnvDBStatementTimeout, "not a duration"},
		{"statement timeout zero", map[string]string{EnvDBStatementTimeout: "0s"}, EnvDBStatementTimeout, "at least 1ms"},
		{"idle in transaction timeout negative", map[string]string{EnvDBIdleInTransactionTimeout: "-1s"},
			EnvDBIdleInTransactionTimeout, "at least 1ms"},
		{"allow private not a boolean", map[string]string{EnvAllowPrivateUpstreams: "yes"}, EnvAllowPrivateUpstreams, "not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := fromEnvError(t, tt.give, tt.wantVar, tt.wantText)
			for _, secret := range []string{"s3cretpw", "redispw"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q leaks a password", msg)
				}
			}
		})
	}
}

func TestFromEnvAllowPrivateUpstreams(t *testing.T) {
	tests := []struct {
		name string
		give string
		want bool
	}{
		{"unset", "", false},
		{"one", "1", true},
		{"true", "true", true},
		{"zero", "0", false},
		{"false", "false", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustFromEnv(t, map[string]string{EnvAllowPrivateUpstreams: tt.give})
			if cfg.AllowPrivateUpstreams != tt.want {
				t.Fatalf("%s=%q: AllowPrivateUpstreams = %v, want %v", EnvAllowPrivateUpstreams, tt.give, cfg.AllowPrivateUpstreams, tt.want)
			}
		})
	}
}
