package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

// repoRoot is the poolgate checkout: $POOLGATE_REPO_ROOT, else the nearest directory at or
// above the working directory (tests/yaegi for go run, this package's for go test) that
// holds plugin/ and go.mod.
func repoRoot() string {
	if d := os.Getenv("POOLGATE_REPO_ROOT"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "..")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "plugin", "plugin.go")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return filepath.Join("..", "..")
		}
		dir = up
	}
}

// loadInterpreted imports the plugin into a Yaegi interpreter as Traefik does (a GOPATH
// copy, the stdlib symbols), with the stagebench build tag, and returns its StageBench.
func loadInterpreted() (stageFunc, func(), error) {
	dir, err := os.MkdirTemp("", "poolgate-stagebench-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	root := repoRoot()
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	dst := filepath.Join(dir, "src", filepath.FromSlash(module))
	if err := os.CopyFS(filepath.Join(dst, "plugin"), os.DirFS(filepath.Join(root, "plugin"))); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("copying plugin/: %w", err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dst, "go.mod"), gomod, 0o644)
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	i := interp.New(interp.Options{GoPath: dir, Env: os.Environ(), BuildTags: []string{"stagebench"}})
	if err := i.Use(stdlib.Symbols); err != nil {
		cleanup()
		return nil, nil, err
	}
	fn, err := evalStageBench(i, module+"/plugin")
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return fn, cleanup, nil
}

// evalStageBench imports the plugin and pulls StageBench out; Yaegi reports some failures
// as panics.
func evalStageBench(i *interp.Interpreter, importPath string) (fn stageFunc, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaegi panicked: %v", r)
		}
	}()
	if _, err := i.Eval(fmt.Sprintf("import %q", importPath)); err != nil {
		return nil, fmt.Errorf("importing the plugin: %w", err)
	}
	v, err := i.Eval("plugin.StageBench")
	if err != nil {
		return nil, fmt.Errorf("evaluating StageBench: %w", err)
	}
	f, ok := v.Interface().(func(string, string, int) (int64, string))
	if !ok {
		return nil, fmt.Errorf("StageBench is %s", reflect.TypeOf(v.Interface()))
	}
	return f, nil
}

func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")), nil
		}
	}
	return "", fmt.Errorf("%s names no module", gomod)
}
