package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The goals of the fast path (README.md, "Tests and benchmarks") and their evaluation: pure
// functions of the figures measured in one run (goals.go measures them), so that the
// thresholds are unit-tested.

// Thresholds of the goals.
const (
	maxAddedP50        = 500 * time.Microsecond // poolgate's added p50 over Traefik alone, non-stream, c=1
	minThroughputShare = 0.5                    // poolgate's req/s over Traefik alone's at c=32
	maxBytesPerStream  = 64 << 10               // Traefik + controlsvc resident memory per open stream
	targetStreams      = 10000                  // streams open at once, every one completing
)

// goal is one line of the goal table.
type goal struct {
	name string // what is asked
	got  string // what was measured, with the figures
	pass bool
	note string // why a goal failed beyond its figure (errors, a machine limit); may be ""
}

func (g goal) verdict() string {
	if g.pass {
		return "PASS"
	}
	return "FAIL"
}

// caseFailure is the note of a goal whose case had failed requests: its figure is not
// trusted, so the goal fails whatever the figure says.
func caseFailure(errs ...int) string {
	n := 0
	for _, e := range errs {
		n += e
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d requests failed in its cases", n)
}

// baselineNote judges the failed requests of a baseline (Traefik alone, the floor): replies
// cut short by Traefik's proxy race with the request body (traefik/traefik#11767, see
// streamCase.tolerateAborts) are tolerated up to a tenth, as in the convert part; any other
// failure is not. It returns the note and whether the baseline's figure stands.
func baselineNote(name string, r result) (string, bool) {
	switch {
	case r.errors == 0:
		return "", true
	case r.errors == r.aborted && r.aborted*10 <= r.ok+r.aborted:
		return fmt.Sprintf("%s: %d of %d replies cut short by traefik/traefik#11767, tolerated (not counted)", name, r.aborted, r.ok+r.aborted), true
	}
	return fmt.Sprintf("%s: %d requests failed", name, r.errors), false
}

// addedP50Goal: non-stream, c=1, poolgate's p50 minus Traefik alone's ≤ maxAddedP50.
func addedP50Goal(gateway, traefik result) goal {
	added := gateway.p50 - traefik.p50
	g := goal{
		name: fmt.Sprintf("non-stream c=1: added p50 over Traefik alone <= %s", maxAddedP50),
		got:  fmt.Sprintf("%s (poolgate %s, Traefik %s)", round(added), round(gateway.p50), round(traefik.p50)),
		pass: gateway.p50 > 0 && traefik.p50 > 0 && added <= maxAddedP50,
		note: caseFailure(gateway.errors, traefik.errors),
	}
	if gateway.p50 == 0 || traefik.p50 == 0 {
		g.note = "a case served no request"
	}
	if g.note != "" {
		g.pass = false
	}
	return g
}

// throughputShareGoal: at c=32 poolgate's req/s ≥ minThroughputShare × Traefik alone's.
func throughputShareGoal(mode string, gateway, traefik result) goal {
	share := 0.0
	if traefik.rps > 0 {
		share = gateway.rps / traefik.rps
	}
	g := goal{
		name: fmt.Sprintf("%s c=32: req/s >= %.1f x Traefik alone's", mode, minThroughputShare),
		got:  fmt.Sprintf("%.3f x (poolgate %.0f, Traefik %.0f req/s)", share, gateway.rps, traefik.rps),
		pass: traefik.rps > 0 && share >= minThroughputShare,
	}
	note, stands := baselineNote("Traefik alone", traefik)
	if gw := caseFailure(gateway.errors); gw != "" {
		note, stands = "poolgate: "+gw, false
	}
	g.note = note
	if !stands {
		g.pass = false
	}
	return g
}

// scalingGoal: poolgate's req/s with more clients is not below the req/s with fewer.
func scalingGoal(mode string, cLo, cHi int, lo, hi result) goal {
	g := goal{
		name: fmt.Sprintf("%s: req/s at c=%d >= at c=%d", mode, cHi, cLo),
		got:  fmt.Sprintf("%.0f vs %.0f req/s (%.2f x)", hi.rps, lo.rps, safeDiv(hi.rps, lo.rps)),
		pass: lo.rps > 0 && hi.rps >= lo.rps,
		note: caseFailure(lo.errors, hi.errors),
	}
	if g.note != "" {
		g.pass = false
	}
	return g
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// streamsOutcome is what the open-streams phase (streams.go) measured.
type streamsOutcome struct {
	target     int    // streams asked for: targetStreams, or fewer when a limit forbids it
	limitNote  string // why target is below targetStreams ("" when it is not)
	opened     int    // the most streams open at once (headers received, not finished)
	completed  int    // streams that ended with their terminal event and every delta
	failed     int    // streams that did not
	firstError string
	// Resident memory of Traefik + controlsvc, kB: before the streams and at the sample
	// with the most streams open.
	rssBeforeKB, rssDuringKB int64
	floors                   []floorFigure // the same streams through Traefik alone and the empty plugin
}

// perStreamBytes is (RSS during − RSS before) / streams open at the sample.
func (o streamsOutcome) perStreamBytes() int64 {
	if o.opened == 0 {
		return 0
	}
	return (o.rssDuringKB - o.rssBeforeKB) * 1024 / int64(o.opened)
}

// streamGoals: ≤ maxBytesPerStream per open stream, and targetStreams open at once that all
// complete. A run below targetStreams (a machine limit) fails the second goal and says why.
func streamGoals(o streamsOutcome) []goal {
	mem := goal{
		name: fmt.Sprintf("open streams: Traefik + controlsvc RSS <= %d KiB per stream", maxBytesPerStream>>10),
		got: fmt.Sprintf("%.1f KiB per stream ((%d - %d kB) / %d open)", float64(o.perStreamBytes())/1024,
			o.rssDuringKB, o.rssBeforeKB, o.opened),
		pass: o.opened > 0 && o.perStreamBytes() <= maxBytesPerStream,
	}
	if o.opened == 0 {
		mem.note = "no stream was open"
	}
	for _, f := range o.floors {
		mem.got += fmt.Sprintf("; floor %s %.1f KiB", f.name, float64(f.perStreamB)/1024)
	}
	all := goal{
		name: fmt.Sprintf("%d streams open at once, every one completes", targetStreams),
		got:  fmt.Sprintf("%d asked, %d open at once, %d completed, %d failed", o.target, o.opened, o.completed, o.failed),
		pass: o.target >= targetStreams && o.opened >= targetStreams && o.completed == o.target && o.failed == 0,
	}
	switch {
	case o.limitNote != "":
		all.note = o.limitNote
	case o.failed > 0:
		all.note = "e.g. " + o.firstError
	case o.opened < o.target:
		all.note = "the streams were not all open at the same time"
	}
	return []goal{mem, all}
}

// parseVmRSS reads the VmRSS line of /proc/<pid>/status, in kB.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "VmRSS:"))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("unexpected VmRSS line %q", line)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no VmRSS line (a kernel thread or a process that has exited)")
}

// parseMaxOpenFiles reads the soft "Max open files" limit of /proc/<pid>/limits; -1 is
// unlimited.
func parseMaxOpenFiles(limits []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(limits))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
		if len(f) < 2 {
			return 0, fmt.Errorf("unexpected limits line %q", line)
		}
		if f[0] == "unlimited" {
			return -1, nil
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected limits line %q", line)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no Max open files line")
}

// streamCapacity is how many streams a process with limit open files can hold when each
// stream costs it perStream descriptors and reserve are kept for everything else (-1:
// unlimited).
func streamCapacity(limit int64, perStream, reserve int) int {
	if limit < 0 {
		return int(^uint(0) >> 1)
	}
	n := (int(limit) - reserve) / perStream
	if n < 0 {
		return 0
	}
	return n
}

// printGoals writes the goal table.
func printGoals(goals []goal) {
	fmt.Printf("\ngoals (README.md, \"Tests and benchmarks\"), measured in this run on this machine\n")
	pass := 0
	for _, g := range goals {
		fmt.Printf("  %-4s  %-62s %s\n", g.verdict(), g.name, g.got)
		if g.note != "" {
			fmt.Printf("        %-62s (%s)\n", "", g.note)
		}
		if g.pass {
			pass++
		}
	}
	fmt.Printf("  %d of %d goals PASS\n", pass, len(goals))
}
