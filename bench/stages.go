package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// The plugin's stages (docs/design.md, "The plugin's stages and their cost"), timed by
// tests/yaegi/stagebench: the plugin's own code per stage on a 2 KB Responses body,
// compiled natively and interpreted by Yaegi v0.16.1 as Traefik runs it, against a loopback
// control service with a canned grant. The breakdown takes its plugin rows from here: the
// plugin times no stage itself on the request path.

// stageFigures is one stage's fastest ns per run (per event for relay-event).
type stageFigures struct {
	Stage    string `json:"stage"`
	What     string `json:"what"`
	NativeNs int64  `json:"native_ns"`
	YaegiNs  int64  `json:"yaegi_ns"`
}

var (
	stagesOnce sync.Once
	stagesFigs []stageFigures
	stagesErr  error
)

// pluginStages runs the stage benchmark once per bench run. It is its own module
// (tests/yaegi, which requires Yaegi), hence a go run rather than an import.
func pluginStages() ([]stageFigures, error) {
	stagesOnce.Do(func() {
		root, err := os.Getwd()
		if err != nil {
			stagesErr = err
			return
		}
		goBin := os.Getenv("GO")
		if goBin == "" {
			goBin = "go"
		}
		cmd := exec.Command(goBin, "run", "-tags", "stagebench", "./stagebench", "-json")
		cmd.Dir = filepath.Join(root, "tests", "yaegi")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			stagesErr = fmt.Errorf("tests/yaegi/stagebench: %v: %s", err, lastLine(errOut.String()))
			return
		}
		if err := json.Unmarshal(out.Bytes(), &stagesFigs); err != nil {
			stagesErr = fmt.Errorf("tests/yaegi/stagebench output: %w", err)
		}
	})
	return stagesFigs, stagesErr
}

func lastLine(s string) string {
	s = string(bytes.TrimSpace([]byte(s)))
	if i := bytes.LastIndexByte([]byte(s), '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// stageYaegi is a stage's time under Yaegi, and the note with its native time, for a
// breakdown row; ok is false when the stage was not measured.
func stageYaegi(figs []stageFigures, stage string) (time.Duration, string, bool) {
	for _, f := range figs {
		if f.Stage == stage && f.YaegiNs > 0 {
			return time.Duration(f.YaegiNs), fmt.Sprintf("stagebench %s under Yaegi (native %s): %s", stage, usText(f.NativeNs), f.What), true
		}
	}
	return 0, "", false
}

// printStages prints the stage table.
func printStages(figs []stageFigures) {
	fmt.Printf("\nplugin stages (tests/yaegi/stagebench), 2 KB Responses body, fastest of 5 runs; µs per request, relay per event\n")
	fmt.Printf("  %-12s %10s %10s %8s   %s\n", "stage", "native", "yaegi", "ratio", "covers")
	for _, f := range figs {
		ratio := "-"
		if f.NativeNs > 0 {
			ratio = fmt.Sprintf("%.0fx", float64(f.YaegiNs)/float64(f.NativeNs))
		}
		fmt.Printf("  %-12s %10s %10s %8s   %s\n", f.Stage, usText(f.NativeNs), usText(f.YaegiNs), ratio, f.What)
	}
}

func usText(ns int64) string {
	if ns <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(ns)/1000)
}

// runStages is -only stages: the stage table alone, without the stack.
func runStages() error {
	figs, err := pluginStages()
	if err != nil {
		return err
	}
	printStages(figs)
	return nil
}
