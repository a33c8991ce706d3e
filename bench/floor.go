package main

import (
	"os"
	"path/filepath"
)

// The floor: an empty middleware under Yaegi, loaded by the same Traefik
// binary as a local plugin the way poolgate is. Its ServeHTTP only calls next, so the gap
// between it and Traefik alone is what the interpreter costs per request before any of
// poolgate's work; the gap between poolgate and it is poolgate's own.

const noopModule = "github.com/poolgate/benchnoop"

// noopSource is the whole plugin. New returns a handler of its own (not next itself), so
// every request goes through one interpreted method call.
const noopSource = `// Package benchnoop is the empty middleware of poolgate's bench: it only calls next.
package benchnoop

import (
	"context"
	"net/http"
)

// Config has no settings.
type Config struct{}

// CreateConfig returns the empty configuration.
func CreateConfig() *Config { return &Config{} }

// Noop passes every request on.
type Noop struct{ next http.Handler }

// New returns the middleware.
func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	return &Noop{next: next}, nil
}

func (n *Noop) ServeHTTP(rw http.ResponseWriter, req *http.Request) { n.next.ServeHTTP(rw, req) }
`

const noopManifest = "displayName: bench noop\ntype: middleware\nimport: " + noopModule + "\nsummary: calls next, nothing else\ntestData: {}\n"

// noopStatic and noopDynamic extend the baseline Traefik's configuration (main.go).
const (
	noopStatic  = "experimental:\n  localPlugins:\n    noop:\n      moduleName: " + noopModule + "\n"
	noopDynamic = "  middlewares:\n    noop:\n      plugin:\n        noop: {}\n"
)

// installNoopPlugin lays the plugin out in Traefik's working directory dir.
func installNoopPlugin(dir string) error {
	dst := filepath.Join(dir, "plugins-local", "src", filepath.FromSlash(noopModule))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		".traefik.yml": noopManifest,
		"go.mod":       "module " + noopModule + "\n\ngo 1.22\n",
		"noop.go":      noopSource,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
