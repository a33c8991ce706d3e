package yaegi

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

// interpretWithProbe interprets a copy of the plugin, with src added as the file name, under
// Traefik's symbol set (no syscall, no unsafe), and returns the values of the named
// package-level symbols of the plugin (e.g. "ClassifyProbe"). A probe file exposes
// unexported plugin functions to the test as func values. dir holds the copy; the
// interpreter reads the sources at import, so dir may be removed afterwards.
func interpretWithProbe(dir, name, src string, symbols ...string) ([]reflect.Value, error) {
	return interpretWithProbeIn(dir, "plugin", name, src, symbols...)
}

// interpretWithProbeIn is interpretWithProbe for the plugin's package pkg ("plugin",
// "plugin/convert"): the probe file is added to that package, the package is imported as
// Traefik's interpreter imports it (from the module's GOPATH copy), and the symbols are
// read from it.
func interpretWithProbeIn(dir, pkg, name, src string, symbols ...string) ([]reflect.Value, error) {
	module, err := readModulePath(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(dir, "src", filepath.FromSlash(module))
	if err := copyDir(filepath.Join(repoRoot, "plugin"), filepath.Join(dst, "plugin")); err != nil {
		return nil, err
	}
	if err := copyFile(filepath.Join(repoRoot, "go.mod"), filepath.Join(dst, "go.mod")); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dst, filepath.FromSlash(pkg), name), []byte(src), 0o644); err != nil {
		return nil, err
	}
	i := interp.New(interp.Options{GoPath: dir, Env: os.Environ()})
	if err := i.Use(stdlib.Symbols); err != nil {
		return nil, err
	}
	if _, err := safeEval(i, fmt.Sprintf("import %q", module+"/"+pkg)); err != nil {
		return nil, fmt.Errorf("importing %s with %s: %w", pkg, name, err)
	}
	out := make([]reflect.Value, 0, len(symbols))
	for _, sym := range symbols {
		v, err := safeEval(i, path.Base(pkg)+"."+sym)
		if err != nil {
			return nil, fmt.Errorf("evaluating %s: %w", sym, err)
		}
		out = append(out, v)
	}
	return out, nil
}
