package plugin

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

func TestCreateConfigDefaults(t *testing.T) {
	t.Parallel()
	got := *CreateConfig()
	want := Config{
		ControlURL:            "http://127.0.0.1:8090",
		MaxBodyBytes:          67108864,
		MaxAccountSwitches:    3,
		AdmissionTimeout:      "5s",
		MaxWait:               "150s",
		PingInterval:          "10s",
		UpstreamHeaderTimeout: "600s",
		FirstTokenTimeout:     "60s",
		ResponseHeaderTimeout: "300s",
		SameAccountRetryMax:   "3s",
		StreamIdleTimeout:     "180s",
		RequestTimeout:        "30m",
		DrainTimeout:          "30s",
		WriteStallTimeout:     "60s",
	}
	if got != want {
		t.Fatalf("CreateConfig() = %+v, want %+v", got, want)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    func(*Config)
		wantErr error
	}{
		{name: "defaults with secret", give: func(c *Config) {}},
		{name: "zero switches allowed", give: func(c *Config) { c.MaxAccountSwitches = 0 }},
		{name: "missing secret", give: func(c *Config) { c.PluginSecret = "" }, wantErr: errMissingSecret},
		{name: "relative control URL", give: func(c *Config) { c.ControlURL = "controlsvc:8090" }, wantErr: errBadControlURL},
		{name: "ftp control URL", give: func(c *Config) { c.ControlURL = "ftp://x" }, wantErr: errBadControlURL},
		{name: "zero body limit", give: func(c *Config) { c.MaxBodyBytes = 0 }, wantErr: errBadBodyLimit},
		{name: "negative switches", give: func(c *Config) { c.MaxAccountSwitches = -1 }, wantErr: errBadSwitches},
		{name: "bad admission timeout", give: func(c *Config) { c.AdmissionTimeout = "soon" }, wantErr: errBadDuration},
		{name: "zero header timeout", give: func(c *Config) { c.UpstreamHeaderTimeout = "0s" }, wantErr: errBadDuration},
		{name: "no waiting, no pings", give: func(c *Config) { c.MaxWait = "0s"; c.PingInterval = "0s" }},
		{name: "negative max wait", give: func(c *Config) { c.MaxWait = "-1s" }, wantErr: errBadOptional},
		{name: "bad ping interval", give: func(c *Config) { c.PingInterval = "often" }, wantErr: errBadOptional},
		{name: "no drain", give: func(c *Config) { c.DrainTimeout = "0s" }},
		{name: "negative drain", give: func(c *Config) { c.DrainTimeout = "-5s" }, wantErr: errBadOptional},
		{name: "bad response header timeout", give: func(c *Config) { c.ResponseHeaderTimeout = "long" }, wantErr: errBadOptional},
		{name: "negative same-account retry", give: func(c *Config) { c.SameAccountRetryMax = "-3s" }, wantErr: errBadOptional},
		{name: "no stall watchdog", give: func(c *Config) { c.WriteStallTimeout = "0s" }},
		{name: "bad stall timeout", give: func(c *Config) { c.WriteStallTimeout = "-1s" }, wantErr: errBadOptional},
		{name: "control URL list", give: func(c *Config) { c.ControlURLs = "http://127.0.0.1:1, http://127.0.0.1:2/" }},
		{name: "bad entry in control URL list", give: func(c *Config) { c.ControlURLs = "http://127.0.0.1:1,127.0.0.1:2" }, wantErr: errBadControlURL},
		{name: "list wins over a bad single URL", give: func(c *Config) { c.ControlURL = "nope"; c.ControlURLs = "http://127.0.0.1:1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := CreateConfig()
			cfg.PluginSecret = "s"
			cfg.ControlURL = "http://127.0.0.1:1/"
			tt.give(cfg)
			h, err := New(context.Background(), http.NotFoundHandler(), cfg, "mw")
			if tt.wantErr == nil {
				if err != nil || h == nil {
					t.Fatalf("New() = %v, %v; want a handler", h, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Cleanup(func() {
		closeControl("http://127.0.0.1:1", "s")
		closeControl("http://127.0.0.1:1,http://127.0.0.1:2", "s")
	})
}

func TestNewSharesBackgroundObjects(t *testing.T) {
	stub := newContractStub(t)
	a := newTestPlugin(t, stub, nil)
	b := newTestPlugin(t, stub, nil)
	if a.control != b.control || a.transport != b.transport {
		t.Fatal("two instances with the same config must share control client and transport")
	}
	c := newTestPlugin(t, stub, func(c *Config) { c.UpstreamHeaderTimeout = "17s" })
	if c.transport == a.transport || c.transport.ResponseHeaderTimeout.String() != "17s" {
		t.Fatal("a different header timeout needs its own transport")
	}
}
