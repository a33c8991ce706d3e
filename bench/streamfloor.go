package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/internal/testenv"
)

// The floors of the open-streams phase (docs/design.md, "Memory per open stream"): the same
// slow streams through Traefik alone (a plain router to the fake upstream) and through
// Traefik with the empty Yaegi plugin (floor.go), each a Traefik of its own, RSS per open
// stream measured the same way. What poolgate's Traefik holds above the empty plugin's is
// poolgate's; what the empty plugin holds above Traefik alone is the interpreter's; Traefik
// alone's is Traefik's.

// streamPhase is one target of the phase: where the streams go and whose memory counts.
type streamPhase struct {
	name, url, key string
	pids           []int  // Traefik first, then any controlsvc
	debugURL       string // Traefik's API with its debug endpoints
	n              int
	rate           float64
	words          int
	length         time.Duration
	profDir        string // "": no profile files
}

// phaseResult is what one phase measured beyond streamsOutcome's counts.
type phaseResult struct {
	openResult
	before []int64 // each process's RSS before the streams, kB
	// Traefik's goroutines before the streams and at the peak (-1: not read).
	goroutinesBefore, goroutinesPeak int
	// Traefik's Go runtime memory before and at the peak (nil: not read).
	memBefore, memPeak *memStats
}

// memStats are the fields of Traefik's runtime.MemStats (expvar, /debug/vars) that split
// its RSS: the heap's live and garbage bytes (HeapAlloc), the spans holding them
// (HeapInuse), the goroutine stacks (StackInuse) and everything the runtime took (Sys).
type memStats struct {
	HeapAlloc, HeapInuse, HeapIdle, HeapReleased, StackInuse, Sys uint64
}

// readMemStats reads Traefik's memstats (nil: not available).
func readMemStats(debugURL string) *memStats {
	resp, err := http.Get(debugURL + "/debug/vars")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var v struct{ Memstats *memStats }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return nil
	}
	return v.Memstats
}

// floorFigure is one floor's figure for the goal table.
type floorFigure struct {
	name       string
	opened     int
	perStreamB int64 // Traefik's RSS growth per open stream, bytes
	goroutines float64
}

func floorName(noop bool) string {
	if noop {
		return "empty-plugin"
	}
	return "traefik-alone"
}

// run measures the RSS before, opens the streams, and at the peak counts Traefik's
// goroutines and, with profDir, saves its heap and goroutine profiles.
func (ph streamPhase) run(out *streamsOutcome) (phaseResult, error) {
	var res phaseResult
	time.Sleep(time.Second)
	res.goroutinesBefore = goroutineCount(ph.debugURL)
	res.memBefore = readMemStats(ph.debugURL)
	if ph.profDir != "" {
		// The heap before, for go tool pprof -diff_base: what the streams added.
		if err := saveProfile(ph.debugURL, "heap", filepath.Join(ph.profDir, ph.name+"-heap-before.pb.gz")); err != nil {
			fmt.Printf("  %s: the heap profile before: %v\n", ph.name, err)
		}
	}
	var err error
	if out.rssBeforeKB, res.before, err = stackRSS(ph.pids); err != nil {
		return res, err
	}
	res.goroutinesPeak = -1
	atPeak := func() {
		res.goroutinesPeak = goroutineCount(ph.debugURL)
		res.memPeak = readMemStats(ph.debugURL)
		if ph.profDir != "" {
			for _, p := range []string{"heap", "goroutine"} {
				if err := saveProfile(ph.debugURL, p, filepath.Join(ph.profDir, ph.name+"-"+p+".pb.gz")); err != nil {
					fmt.Printf("  %s: the %s profile: %v\n", ph.name, p, err)
				}
			}
		}
	}
	res.openResult = openStreams(ph.url, ph.key, ph.n, ph.rate, ph.words, ph.length+2*time.Minute, ph.pids, out, atPeak)
	if res.sampleErr != nil {
		return res, fmt.Errorf("reading RSS: %w", res.sampleErr)
	}
	return res, nil
}

// print writes each process's RSS per open stream and Traefik's goroutines per stream.
func (ph streamPhase) print(res phaseResult, opened int) {
	for i, p := range ph.pids {
		if i >= len(res.before) || i >= len(res.perKB) {
			continue
		}
		name := "controlsvc"
		if i == 0 {
			name = "traefik"
		}
		fmt.Printf("  %-10s pid %-7d before %8d kB, with the streams open %8d kB: %.1f KiB per stream\n", name, p,
			res.before[i], res.perKB[i], safeDiv(float64(res.perKB[i]-res.before[i]), float64(opened)))
	}
	if res.goroutinesBefore >= 0 && res.goroutinesPeak >= 0 {
		fmt.Printf("  traefik goroutines: before %d, at the peak %d: %.2f per stream\n", res.goroutinesBefore, res.goroutinesPeak,
			safeDiv(float64(res.goroutinesPeak-res.goroutinesBefore), float64(opened)))
	}
	if b, p := res.memBefore, res.memPeak; b != nil && p != nil {
		per := func(before, peak uint64) float64 {
			return safeDiv((float64(peak)-float64(before))/1024, float64(opened))
		}
		fmt.Printf("  traefik runtime, KiB per stream: heap allocated %.1f, heap spans in use %.1f, stacks %.1f, idle heap not returned %.1f, all the runtime took %.1f\n",
			per(b.HeapAlloc, p.HeapAlloc), per(b.HeapInuse, p.HeapInuse), per(b.StackInuse, p.StackInuse),
			per(b.HeapIdle-b.HeapReleased, p.HeapIdle-p.HeapReleased), per(b.Sys, p.Sys))
	}
	if ph.profDir != "" {
		fmt.Printf("  profiles at the peak: %s\n", filepath.Join(ph.profDir, ph.name+"-{heap,goroutine}.pb.gz"))
	}
}

// runStreamFloor starts a Traefik with no middleware (noop false) or the empty plugin,
// routing to upstream, and opens ph's streams through it with cred, the fake upstream's
// credential whose script paces them.
func runStreamFloor(ctx context.Context, traefikBin, dir, upstream, certFile, cred string, noop bool, ph streamPhase) (floorFigure, error) {
	f := floorFigure{name: floorName(noop)}
	debugAddr, err := testenv.FreeAddr()
	if err != nil {
		return f, err
	}
	base, pid, stop, err := startBaseline(ctx, traefikBin, dir, upstream, noop, debugAddr, certFile)
	if err != nil {
		return f, err
	}
	defer stop()
	// The fake's quick default answer (another credential) for the warm-up.
	load(base+"/v1/responses", "sk-bench-upstream", goalsStreamBody, 8, 2*time.Second)
	ph.name, ph.url, ph.key, ph.pids, ph.debugURL = f.name, base+"/v1/responses", cred, []int{pid}, "http://"+debugAddr
	var out streamsOutcome
	res, err := ph.run(&out)
	if err != nil {
		return f, err
	}
	fmt.Printf("floor %s (Traefik pid %d): %d open, %d completed, %d failed\n", f.name, pid, out.opened, out.completed, out.failed)
	ph.print(res, out.opened)
	if out.failed > 0 {
		fmt.Printf("  e.g. %s\n", out.firstError)
	}
	f.opened, f.perStreamB = out.opened, out.perStreamBytes()
	if res.goroutinesBefore >= 0 && res.goroutinesPeak >= 0 {
		f.goroutines = safeDiv(float64(res.goroutinesPeak-res.goroutinesBefore), float64(out.opened))
	}
	return f, nil
}

// goroutineCount reads the total of Traefik's goroutine profile (-1: not available).
func goroutineCount(debugURL string) int {
	resp, err := http.Get(debugURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	// "goroutine profile: total 1234"
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total ")))
	if resp.StatusCode != http.StatusOK || err != nil {
		return -1
	}
	return n
}

func saveProfile(debugURL, name, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	resp, err := http.Get(debugURL + "/debug/pprof/" + name)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
