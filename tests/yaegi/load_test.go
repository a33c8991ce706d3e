package yaegi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var (
	sharedOnce   sync.Once
	sharedPlugin *yaegiPlugin
	sharedErr    error
	sharedDir    string
)

// plugin returns the plugin loaded once per test binary (Traefik, too, builds one
// interpreter per plugin and shares its package state across middleware instances).
func plugin(t *testing.T) *yaegiPlugin {
	t.Helper()
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "poolgate-yaegi-")
		if sharedErr == nil {
			sharedPlugin, sharedErr = loadPlugin(sharedDir)
		}
	})
	if sharedErr != nil {
		t.Fatalf("Yaegi v0.16.1 cannot load the plugin the way Traefik v3.7 does; Traefik would "+
			"disable every plugin route (404) or exit at start: %v", sharedErr)
	}
	return sharedPlugin
}

// TestPluginLoadsUnderYaegi is the guard that Traefik will load the plugin: the import,
// CreateConfig and New must all work in the interpreter.
func TestPluginLoadsUnderYaegi(t *testing.T) {
	p := plugin(t)
	if p.manifest.UseUnsafe {
		t.Logf("manifest asks for useUnsafe: the Traefik static config must allow it too")
	}
	cfg, err := p.createConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ControlURL":            "http://127.0.0.1:8090",
		"PluginSecret":          "",
		"MaxBodyBytes":          int64(67108864),
		"MaxAccountSwitches":    3,
		"AdmissionTimeout":      "5s",
		"MaxWait":               "150s",
		"PingInterval":          "10s",
		"UpstreamHeaderTimeout": "600s",
		"FirstTokenTimeout":     "60s",
		"ResponseHeaderTimeout": "300s",
		"SameAccountRetryMax":   "3s",
	}
	checkConfig(t, cfg, want)
	h, err := p.newHandler(context.Background(), http.NotFoundHandler(), map[string]any{"pluginSecret": "s"}, "guard")
	if err != nil {
		t.Fatalf("New with defaults and a secret: %v", err)
	}
	if h == nil {
		t.Fatal("New returned a nil handler")
	}
	if len(p.manifest.TestData) == 0 {
		t.Fatal(".traefik.yml testData has no settings")
	}
	if _, err := p.newHandler(context.Background(), http.NotFoundHandler(), p.manifest.TestData, "testdata"); err != nil {
		t.Errorf("New rejects the manifest's testData %v: %v", p.manifest.TestData, err)
	}
}

// checkConfig compares exported fields of the interpreted *Config with want.
func checkConfig(t *testing.T, cfg reflect.Value, want map[string]any) {
	t.Helper()
	v := reflect.Indirect(cfg)
	if v.Kind() != reflect.Struct {
		t.Fatalf("CreateConfig returned %s, want a pointer to a struct", cfg.Type())
	}
	for name, w := range want {
		f := v.FieldByName(name)
		if !f.IsValid() {
			t.Errorf("Config has no field %s", name)
			continue
		}
		got := f.Interface()
		wv := reflect.ValueOf(w)
		if f.Kind() != wv.Kind() && wv.CanConvert(f.Type()) {
			w = wv.Convert(f.Type()).Interface()
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("Config.%s = %#v, want %#v", name, got, w)
		}
	}
}

// TestConfigDecodesLikeTraefik feeds settings shaped like Traefik's dynamic configuration:
// lower camel keys, values often strings (the file and label providers produce strings).
func TestConfigDecodesLikeTraefik(t *testing.T) {
	p := plugin(t)
	tests := []struct {
		name     string
		settings map[string]any
		want     map[string]any
	}{
		{
			name: "strings from a file provider",
			settings: map[string]any{
				"controlURL": "http://127.0.0.1:18090", "pluginSecret": "sekrit", "maxBodyBytes": "1048576",
				"maxAccountSwitches": "2", "admissionTimeout": "2s", "upstreamHeaderTimeout": "30s",
				"maxWait": "45s", "pingInterval": "300ms", "allowPrivateUpstreams": "1",
			},
			want: map[string]any{
				"ControlURL": "http://127.0.0.1:18090", "PluginSecret": "sekrit", "MaxBodyBytes": 1048576,
				"MaxAccountSwitches": 2, "AdmissionTimeout": "2s", "UpstreamHeaderTimeout": "30s",
				"MaxWait": "45s", "PingInterval": "300ms", "AllowPrivateUpstreams": true,
			},
		},
		{
			name:     "allowPrivateUpstreams from the template default",
			settings: map[string]any{"pluginSecret": "s", "allowPrivateUpstreams": "false"},
			want:     map[string]any{"AllowPrivateUpstreams": false},
		},
		{
			name:     "allowPrivateUpstreams true",
			settings: map[string]any{"pluginSecret": "s", "allowPrivateUpstreams": "true"},
			want:     map[string]any{"AllowPrivateUpstreams": true},
		},
		{
			name:     "typed values and other key cases",
			settings: map[string]any{"CONTROLURL": "http://h:1", "pluginsecret": "x", "MaxAccountSwitches": 0},
			want: map[string]any{
				"ControlURL": "http://h:1", "PluginSecret": "x", "MaxAccountSwitches": 0,
				"MaxBodyBytes": 67108864, "AdmissionTimeout": "5s", "MaxWait": "150s", "PingInterval": "10s",
				"AllowPrivateUpstreams": false,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := p.createConfig(tt.settings)
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, cfg, tt.want)
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	p := plugin(t)
	tests := []struct {
		name     string
		settings map[string]any
		wantErr  string // "" = valid
	}{
		{name: "valid", settings: map[string]any{"pluginSecret": "s"}},
		{name: "missing secret", settings: map[string]any{}, wantErr: "pluginSecret"},
		{name: "relative control URL", settings: map[string]any{"pluginSecret": "s", "controlURL": "localhost:8090"}, wantErr: "controlURL"},
		{name: "zero body limit", settings: map[string]any{"pluginSecret": "s", "maxBodyBytes": "0"}, wantErr: "maxBodyBytes"},
		{name: "negative switches", settings: map[string]any{"pluginSecret": "s", "maxAccountSwitches": "-1"}, wantErr: "maxAccountSwitches"},
		{name: "bad admission timeout", settings: map[string]any{"pluginSecret": "s", "admissionTimeout": "soon"}, wantErr: "admissionTimeout"},
		{name: "bad header timeout", settings: map[string]any{"pluginSecret": "s", "upstreamHeaderTimeout": "-1s"}, wantErr: "upstreamHeaderTimeout"},
		{name: "negative max wait", settings: map[string]any{"pluginSecret": "s", "maxWait": "-1s"}, wantErr: "maxWait"},
		{name: "bad ping interval", settings: map[string]any{"pluginSecret": "s", "pingInterval": "often"}, wantErr: "pingInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := p.newHandler(context.Background(), http.NotFoundHandler(), tt.settings, "validate")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr == "" && h == nil:
				t.Fatal("New returned a nil handler")
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New err = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestOtherTrafficGoesToNext checks the plugin leaves requests it does not own to the next
// handler (no controlsvc needed: nothing of ours is called).
func TestOtherTrafficGoesToNext(t *testing.T) {
	p := plugin(t)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Next", "yes")
		w.WriteHeader(http.StatusTeapot)
	})
	h, err := p.newHandler(context.Background(), next, map[string]any{"pluginSecret": "s", "controlURL": "http://127.0.0.1:1"}, "next")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		method string
		path   string
	}{
		// Paths under the gateway's routes are the plugin's, unknown ones included
		// (routes_test.go); only other paths reach next.
		{name: "ping", method: http.MethodGet, path: "/ping"},
		{name: "POST elsewhere", method: http.MethodPost, path: "/embeddings"},
		{name: "admin API", method: http.MethodGet, path: "/api/v1/admin/users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader("{}")))
			if rec.Code != http.StatusTeapot || rec.Header().Get("X-Next") != "yes" {
				t.Errorf("%s %s: got %d, want the next handler's 418", tt.method, tt.path, rec.Code)
			}
		})
	}
}
