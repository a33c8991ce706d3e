// Command stagebench times the stages of one request through the plugin (docs/design.md,
// "The plugin's stages and their cost"):
// parse, the admit call, forward set-up, relay per SSE event and report, on a 2 KB Responses
// body, compiled natively and interpreted by Yaegi v0.16.1 as Traefik runs it, and prints a
// table (or, with -json, the figures for bench/breakdown.go). The stages are the plugin's own
// code, in plugin/stagebench.go, built only with -tags stagebench: run it as
//
//	go run -tags stagebench ./stagebench
//
// Without the tag only the interpreted column is measured. The control service is a
// loopback HTTP server here answering admit with a canned grant and every other call with
// 200, so the admit stage is the plugin's side of the call plus one loopback round trip.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// stageFunc is plugin.StageBench: stage, controlURL, runs → ns per run, error text.
type stageFunc func(stage, controlURL string, n int) (int64, string)

// stages in request order, with what each covers.
var stages = []struct{ name, what string }{
	{"parse", "read + validate + extract (one pass), session seed"},
	{"admit-codec", "encode admit request + decode grant (no I/O)"},
	{"admit", "admit call: codec + loopback HTTP round trip"},
	{"forward", "build the upstream request, arm its deadlines"},
	{"relay-event", "relay one SSE event of a committed stream"},
	{"relay-json", "relay a 2 KB JSON reply, usage taken on the way"},
	{"report", "build the completion record + enqueue it"},
	{"report-send", "encode a batch of one + post (off the client's path)"},
	{"request", "a whole non-stream request: ServeHTTP, loopback admit + upstream"},
}

// Figures is one stage's fastest ns per run, natively and under Yaegi (0: not measured).
type Figures struct {
	Stage    string `json:"stage"`
	What     string `json:"what"`
	NativeNs int64  `json:"native_ns"`
	YaegiNs  int64  `json:"yaegi_ns"`
}

func main() {
	asJSON := flag.Bool("json", false, "print the figures as JSON")
	budget := flag.Duration("t", 300*time.Millisecond, "measuring time per stage and run")
	rounds := flag.Int("rounds", 5, "runs per stage; the fastest is printed")
	only := flag.String("stages", "", "comma-separated stages to time (default: all)")
	flag.Parse()
	figs, err := measure(*budget, *rounds, *only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stagebench:", err)
		os.Exit(1)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(figs)
		return
	}
	printTable(figs)
}

// measure runs every stage natively (when built with the tag) and under Yaegi.
func measure(budget time.Duration, rounds int, only string) ([]Figures, error) {
	ctl := startControl()
	defer ctl.Close()
	interpreted, cleanup, err := loadInterpreted()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var figs []Figures
	for _, s := range stages {
		if only != "" && !strings.Contains(","+only+",", ","+s.name+",") {
			continue
		}
		f := Figures{Stage: s.name, What: s.what}
		if native != nil {
			if f.NativeNs, err = timeStage(native, s.name, ctl.URL, budget, rounds); err != nil {
				return nil, fmt.Errorf("native %s: %w", s.name, err)
			}
		}
		if f.YaegiNs, err = timeStage(interpreted, s.name, ctl.URL, budget, rounds); err != nil {
			return nil, fmt.Errorf("yaegi %s: %w", s.name, err)
		}
		figs = append(figs, f)
	}
	return figs, nil
}

// timeStage sizes the run count to the budget from a short trial, then returns the fastest
// of rounds runs: on a shared machine the other load only ever adds time.
func timeStage(fn stageFunc, stage, url string, budget time.Duration, rounds int) (int64, error) {
	trial, e := fn(stage, url, 20)
	if e != "" {
		return 0, fmt.Errorf("%s", e)
	}
	per := trial
	if stage == "relay-event" {
		per *= 203 // a run relays one stream of 203 events
	}
	n := 20
	if per > 0 {
		n = int(int64(budget) / per)
	}
	if n < 20 {
		n = 20
	}
	if n > 200000 {
		n = 200000
	}
	var got []int64
	for r := 0; r < rounds; r++ {
		ns, e := fn(stage, url, n)
		if e != "" {
			return 0, fmt.Errorf("%s", e)
		}
		got = append(got, ns)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	return got[0], nil
}

func printTable(figs []Figures) {
	fmt.Printf("plugin stages, 2 KB Responses body (fastest of runs; µs per run, relay per event)\n")
	fmt.Printf("  %-12s %10s %10s %8s   %s\n", "stage", "native", "yaegi", "ratio", "covers")
	for _, f := range figs {
		nat, ratio := "-", "-"
		if f.NativeNs > 0 {
			nat = us(f.NativeNs)
			ratio = fmt.Sprintf("%.0fx", float64(f.YaegiNs)/float64(f.NativeNs))
		}
		fmt.Printf("  %-12s %10s %10s %8s   %s\n", f.Stage, nat, us(f.YaegiNs), ratio, f.What)
	}
}

func us(ns int64) string { return fmt.Sprintf("%.1f", float64(ns)/1000) }
