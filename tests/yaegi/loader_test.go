package yaegi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/mitchellh/mapstructure"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"github.com/traefik/yaegi/stdlib/syscall"
	"github.com/traefik/yaegi/stdlib/unsafe"
)

// repoRoot is the poolgate checkout: this package's grandparent, or $POOLGATE_REPO_ROOT.
var repoRoot = func() string {
	if d := os.Getenv("POOLGATE_REPO_ROOT"); d != "" {
		return d
	}
	return filepath.Join("..", "..")
}()

// manifest holds the .traefik.yml fields Traefik checks or uses for a Yaegi plugin.
type manifest struct {
	DisplayName string
	Type        string
	Import      string
	BasePkg     string
	Summary     string
	Runtime     string
	UseUnsafe   bool
	HasTestData bool
	TestData    map[string]any // testData's scalar children, as strings
}

// yaegiPlugin is the plugin loaded into one interpreter, as Traefik holds it: one
// interpreter per plugin, shared by every middleware instance.
type yaegiPlugin struct {
	manifest       manifest
	fnNew          reflect.Value
	fnCreateConfig reflect.Value
}

// loadPlugin lays the repository's plugin out in a GOPATH under dir, the way Traefik's
// local plugins directory looks (plugins-local/src/<moduleName>/), and imports it into a
// fresh interpreter with Traefik's symbol sets.
func loadPlugin(dir string) (*yaegiPlugin, error) {
	moduleName, err := readModulePath(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(dir, "src", filepath.FromSlash(moduleName))
	if err := copyDir(filepath.Join(repoRoot, "plugin"), filepath.Join(dst, "plugin")); err != nil {
		return nil, fmt.Errorf("copying plugin/: %w", err)
	}
	for _, f := range []string{".traefik.yml", "go.mod"} {
		if err := copyFile(filepath.Join(repoRoot, f), filepath.Join(dst, f)); err != nil {
			return nil, fmt.Errorf("copying %s: %w", f, err)
		}
	}
	m, err := readManifest(filepath.Join(dst, ".traefik.yml"))
	if err != nil {
		return nil, err
	}
	if err := m.check(moduleName); err != nil {
		return nil, fmt.Errorf(".traefik.yml: %w", err)
	}

	// As Traefik v3.7.13 pkg/plugins/middlewareyaegi.go newInterpreter.
	i := interp.New(interp.Options{GoPath: dir, Env: os.Environ()})
	if err := i.Use(stdlib.Symbols); err != nil {
		return nil, fmt.Errorf("loading stdlib symbols: %w", err)
	}
	if m.UseUnsafe {
		if err := i.Use(unsafe.Symbols); err != nil {
			return nil, fmt.Errorf("loading unsafe symbols: %w", err)
		}
		if err := i.Use(syscall.Symbols); err != nil {
			return nil, fmt.Errorf("loading syscall symbols: %w", err)
		}
	}
	if _, err := safeEval(i, fmt.Sprintf(`import %q`, m.Import)); err != nil {
		return nil, fmt.Errorf("importing plugin code %q: %w", m.Import, err)
	}
	basePkg := m.BasePkg
	if basePkg == "" {
		basePkg = strings.ReplaceAll(path.Base(m.Import), "-", "_")
	}
	p := &yaegiPlugin{manifest: m}
	if p.fnNew, err = safeEval(i, basePkg+".New"); err != nil {
		return nil, fmt.Errorf("evaluating New: %w", err)
	}
	if p.fnCreateConfig, err = safeEval(i, basePkg+".CreateConfig"); err != nil {
		return nil, fmt.Errorf("evaluating CreateConfig: %w", err)
	}
	return p, nil
}

// safeEval turns an interpreter panic (Yaegi panics on some constructs, which makes
// Traefik exit) into an error.
func safeEval(i *interp.Interpreter, src string) (v reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaegi panicked: %v", r)
		}
	}()
	return i.Eval(src)
}

// createConfig calls CreateConfig and decodes settings onto the result with the
// mapstructure options Traefik uses (weakly typed: "3" decodes into an int).
func (p *yaegiPlugin) createConfig(settings map[string]any) (cfg reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("CreateConfig panicked: %v", r)
		}
	}()
	results := p.fnCreateConfig.Call(nil)
	if len(results) != 1 {
		return reflect.Value{}, fmt.Errorf("CreateConfig returned %d values, want 1", len(results))
	}
	cfg = results[0]
	if len(settings) == 0 {
		return cfg, nil
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           cfg.Interface(),
	})
	if err != nil {
		return reflect.Value{}, fmt.Errorf("creating configuration decoder: %w", err)
	}
	if err := dec.Decode(settings); err != nil {
		return reflect.Value{}, fmt.Errorf("decoding configuration: %w", err)
	}
	return cfg, nil
}

// newHandler builds a middleware instance as Traefik does: CreateConfig, decode the
// settings, then New(ctx, next, cfg, name) through reflection.
func (p *yaegiPlugin) newHandler(ctx context.Context, next http.Handler, settings map[string]any, name string) (h http.Handler, err error) {
	cfg, err := p.createConfig(settings)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("New panicked: %v", r)
		}
	}()
	results := p.fnNew.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(next), cfg, reflect.ValueOf(name)})
	if len(results) != 2 {
		return nil, fmt.Errorf("New returned %d values, want 2", len(results))
	}
	if e := results[1].Interface(); e != nil {
		nerr, ok := e.(error)
		if !ok {
			return nil, fmt.Errorf("New returned a non-error %T", e)
		}
		return nil, nerr
	}
	handler, ok := results[0].Interface().(http.Handler)
	if !ok {
		return nil, fmt.Errorf("New returned %T, not an http.Handler", results[0].Interface())
	}
	return handler, nil
}

// check applies the manifest rules Traefik enforces for a local Yaegi middleware.
func (m manifest) check(moduleName string) error {
	var errs []error
	if m.Type != "middleware" {
		errs = append(errs, fmt.Errorf("type is %q, want middleware", m.Type))
	}
	if m.Runtime != "" && m.Runtime != "yaegi" {
		errs = append(errs, fmt.Errorf("runtime is %q, want yaegi (or none)", m.Runtime))
	}
	if !strings.HasPrefix(m.Import, moduleName) {
		errs = append(errs, fmt.Errorf("import %q does not start with the module name %q", m.Import, moduleName))
	}
	if m.DisplayName == "" {
		errs = append(errs, errors.New("displayName is empty"))
	}
	if m.Summary == "" {
		errs = append(errs, errors.New("summary is empty"))
	}
	if !m.HasTestData {
		errs = append(errs, errors.New("testData is missing"))
	}
	return errors.Join(errs...)
}

// readManifest reads the top-level scalar keys of a .traefik.yml. The manifest is flat
// apart from testData, so a line reader is enough and keeps YAML out of the deps.
func readManifest(file string) (manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return manifest{}, err
	}
	defer f.Close()
	m := manifest{TestData: map[string]any{}}
	inTestData := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && inTestData {
				m.TestData[strings.TrimSpace(key)] = unquote(strings.TrimSpace(stripComment(value)))
			}
			continue
		}
		inTestData = false
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = unquote(strings.TrimSpace(stripComment(value)))
		switch strings.TrimSpace(key) {
		case "displayName":
			m.DisplayName = value
		case "type":
			m.Type = value
		case "import":
			m.Import = value
		case "basePkg":
			m.BasePkg = value
		case "summary":
			m.Summary = value
		case "runtime":
			m.Runtime = value
		case "useUnsafe":
			m.UseUnsafe = value == "true"
		case "testData":
			m.HasTestData = true
			inTestData = true
		}
	}
	return m, sc.Err()
}

func stripComment(s string) string {
	if i := strings.Index(s, " #"); i >= 0 && !strings.ContainsAny(s[:i], `"'`) {
		return s[:i]
	}
	return s
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

func readModulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("%s has no module line", gomod)
}

// copyDir copies a directory tree of regular files (Traefik mounts the plugin source;
// a copy keeps the test independent of later edits and of symlink handling).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
