package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
	"github.com/poolgate/poolgate/internal/testenv"
)

// The open-streams phase (the open-streams goal, goaleval.go): targetStreams slow streams
// through the real Traefik at once, on a stack of its own started fresh (so the RSS before
// is not a heap grown by the load cases), and Traefik's + controlsvc's resident memory
// (VmRSS) before and while they are open. The fake upstream paces each stream by
// chunk_delay_ms, so a stream lasts long enough for all of them to be open together: one is
// counted open from its response headers (the plugin commits them at the first text delta)
// to its end.
//
// Streams are started at a fixed rate (three quarters of the gateway's stream throughput at
// c=32 in this run), not all at once: a burst would queue thousands of admit calls in Traefik,
// each on a connection of its own to controlsvc, and measure that queue instead.

const (
	streamChunkDelay = 5 * time.Second  // between events: the first delta comes 4 delays after the start, < the 60 s firstTokenTimeout
	streamHold       = 15 * time.Second // all streams open together at least this long
	// Descriptors: Traefik holds the client's connection per stream. The upstream is the
	// fake's TLS listener with HTTP/2, as the providers serve, so the streams share its
	// connections (up to 250 streams each, Go's server default: 40 for 10 000). The reserve
	// covers those, listeners, log files and the idle pools (256 connections to
	// controlsvc, 256 to the upstream).
	traefikFDsPerStream = 1
	traefikFDReserve    = 600
	benchFDReserve      = 200
	// peakSettle: the figures are taken over this long once every stream is open (the
	// largest RSS in it), then the profiles.
	peakSettle = 5 * time.Second
)

// raiseNoFile lifts this process's open-files limit to its hard limit (a higher hard
// limit needs CAP_SYS_RESOURCE); the children started after it inherit it. It returns a
// line for the output.
func raiseNoFile() string {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Sprintf("open files: getrlimit: %v", err)
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if rl.Max >= want.Max {
		want.Max = rl.Max
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return fmt.Sprintf("open files: limit raised to %d", want.Cur)
	}
	raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		return fmt.Sprintf("open files: soft %d, hard %d; setrlimit: %v", rl.Cur, rl.Max, err)
	}
	return fmt.Sprintf("open files: soft limit raised to the hard limit %d (above it: not permitted, no CAP_SYS_RESOURCE)", rl.Max)
}

func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

func maxOpenFiles(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	return parseMaxOpenFiles(b)
}

// stackRSS sums the VmRSS of Traefik and every controlsvc, kB; each is in per.
func stackRSS(pids []int) (sum int64, per []int64, err error) {
	for _, p := range pids {
		kb, err := readRSS(p)
		if err != nil {
			return 0, nil, fmt.Errorf("pid %d: %w", p, err)
		}
		sum += kb
		per = append(per, kb)
	}
	return sum, per, nil
}

// streamTarget is the count the limits allow, up to want, and why it is lower.
func streamTarget(want int, traefikPID int, ctlPIDs []int) (int, string, error) {
	tl, err := maxOpenFiles(traefikPID)
	if err != nil {
		return 0, "", fmt.Errorf("reading Traefik's limits: %w", err)
	}
	var own syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &own); err != nil {
		return 0, "", err
	}
	fmt.Printf("open-files limits: Traefik %d, bench %d", tl, own.Cur)
	for _, p := range ctlPIDs {
		if l, err := maxOpenFiles(p); err == nil {
			fmt.Printf(", controlsvc %d", l)
		}
	}
	fmt.Println()
	n := want
	note := ""
	if c := streamCapacity(tl, traefikFDsPerStream, traefikFDReserve); c < n {
		n = c
		note = fmt.Sprintf("machine limit: Traefik's open-files limit %d allows %d streams (%d descriptors each + %d reserve); the hard limit cannot be raised here; largest count run: %d",
			tl, c, traefikFDsPerStream, traefikFDReserve, c)
	}
	if c := streamCapacity(int64(own.Cur), 1, benchFDReserve); c < n {
		n = c
		note = fmt.Sprintf("machine limit: the bench's open-files limit %d allows %d client connections; largest count run: %d", own.Cur, c, c)
	}
	if want < targetStreams && note == "" {
		note = fmt.Sprintf("run with -streams %d, below the goal's %d", want, targetStreams)
	}
	return n, note, nil
}

// runStreams starts its own stack and runs the phase through poolgate, then the same
// streams through the floors (streamfloor.go); rate is the streams started per second.
// With profDir set, the heap and goroutine profiles of each Traefik at the peak go there.
func runStreams(ctx context.Context, bin, root, dir string, want int, rate float64, profDir string) (streamsOutcome, error) {
	var out streamsOutcome
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return out, err
	}
	debugAddr, err := testenv.FreeAddr()
	if err != nil {
		return out, err
	}
	st, err := stack.Start(ctx, stack.Options{
		Dir: dir, RepoRoot: root,
		TraefikBin:       filepath.Join(bin, "traefik"),
		ControlsvcBin:    filepath.Join(bin, "controlsvc"),
		FakeupstreamBin:  filepath.Join(bin, "fakeupstream"),
		TraefikDebugAddr: debugAddr,
		FakeTLS:          true,
	})
	if err != nil {
		return out, fmt.Errorf("starting the streams' stack: %w", err)
	}
	defer st.Stop()
	pids := append([]int{st.TraefikPID()}, st.ControlsvcPIDs()...)
	fmt.Printf("\nopen streams: a fresh stack; Traefik pid %d, controlsvc pids %v\n", pids[0], pids[1:])
	n, note, err := streamTarget(want, pids[0], pids[1:])
	if err != nil {
		return out, err
	}
	out.target, out.limitNote = n, note
	const cred = "sk-bench-streams"
	key, err := seedStreams(st, st.FakeTLSURL, cred, n)
	if err != nil {
		return out, fmt.Errorf("seeding: %w", err)
	}
	// Warm-up with the fake's quick default answer: the plugin's code, pools and caches in
	// place before the RSS before is read.
	load(st.GatewayURL+"/v1/responses", key, goalsStreamBody, 8, 2*time.Second)
	if err := waitSlotsFree(st, slotDrainTimeout); err != nil {
		return out, fmt.Errorf("after the warm-up: %w", err)
	}
	ramp := time.Duration(float64(n) / rate * float64(time.Second))
	// Open from its headers (after 4 delays) to its end (after words + 7 delays): words + 3
	// delays, which must cover the ramp and the hold.
	words := int(math.Ceil(float64(ramp+streamHold)/float64(streamChunkDelay))) - 2
	if words < 1 {
		words = 1
	}
	script := map[string]any{"text": convText(words), "chunk_delay_ms": streamChunkDelay.Milliseconds()}
	if err := fakePut(st, "/_fake/credentials/"+url.PathEscape(cred), script); err != nil {
		return out, err
	}
	length := time.Duration(words+7) * streamChunkDelay
	fmt.Printf("%d streams, started at %.0f/s over %s; each %d text deltas %s apart (%s long)\n",
		n, rate, ramp.Round(time.Second), words, streamChunkDelay, length)
	ph := streamPhase{
		name: "poolgate", url: st.GatewayURL + "/v1/responses", key: key, pids: pids,
		debugURL: "http://" + debugAddr, n: n, rate: rate, words: words, length: length, profDir: profDir,
	}
	res, err := ph.run(&out)
	if err != nil {
		return out, err
	}
	fmt.Printf("RSS of Traefik + controlsvc: before %d kB, with %d streams open %d kB, peak %d kB\n",
		out.rssBeforeKB, out.opened, out.rssDuringKB, res.peakKB)
	ph.print(res, out.opened)
	if out.failed > 0 {
		fmt.Printf("%d streams failed, e.g. %s\n", out.failed, out.firstError)
	}
	if err := waitSlotsFree(st, 30*time.Second); err != nil {
		return out, fmt.Errorf("after the streams: %w", err)
	}
	fmt.Println("slots back to 0 after the streams")
	// The floors, on the same fake upstream, with the script of the credential set above.
	for _, noop := range []bool{false, true} {
		f, err := runStreamFloor(ctx, filepath.Join(bin, "traefik"), filepath.Join(dir, floorName(noop)), st.FakeTLSURL, st.FakeCertFile, cred, noop, ph)
		if err != nil {
			return out, fmt.Errorf("the floor %s: %w", floorName(noop), err)
		}
		out.floors = append(out.floors, f)
	}
	return out, nil
}

func seedStreams(st *stack.Stack, upstream, cred string, n int) (string, error) {
	u, err := adminPost(st, "/users", map[string]any{"name": "bench-streams", "concurrency": 2*n + 64, "balance_usd": 1000000})
	if err != nil {
		return "", err
	}
	g, err := adminPost(st, "/groups", map[string]any{"name": "bench-streams", "platform": "openai"})
	if err != nil {
		return "", err
	}
	if _, err := adminPost(st, "/accounts", map[string]any{
		"name": "bench-streams", "platform": "openai", "base_url": upstream,
		"credential": map[string]any{"api_key": cred}, "concurrency": 2*n + 64, "group_ids": []any{g["id"]},
	}); err != nil {
		return "", err
	}
	k, err := adminPost(st, "/api-keys", map[string]any{"user_id": u["id"], "group_id": g["id"], "name": "bench-streams"})
	if err != nil {
		return "", err
	}
	key, _ := k["key"].(string)
	return key, nil
}

type openResult struct {
	peakKB    int64
	perKB     []int64 // each process's RSS at the sample with the most streams open
	sampleErr error
}

// openStreams starts n streams at rate per second, samples the RSS of pids every 250 ms
// and waits for all of them; it fills out's counts and the RSS at the sample with the most
// open. atPeak runs once, settle after all n are open (or, if some never open, once the
// ramp and half the hold are over): the figures stop there, so that its own allocations (a
// profile) do not count.
func openStreams(target, key string, n int, rate float64, words int, timeout time.Duration, pids []int,
	out *streamsOutcome, atPeak func()) openResult {
	tr := &http.Transport{DisableKeepAlives: true, MaxIdleConnsPerHost: -1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}
	var (
		openNow atomic.Int64
		mu      sync.Mutex
		wg      sync.WaitGroup
		res     openResult
	)
	done := make(chan struct{})
	sampled := make(chan struct{})
	start := time.Now()
	fallback := start.Add(time.Duration(float64(n)/rate*float64(time.Second)) + 4*streamChunkDelay + streamHold/2)
	go func() {
		defer close(sampled)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		frozen := false
		var allOpen time.Time
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			kb, per, err := stackRSS(pids)
			if err != nil {
				res.sampleErr = err
				continue
			}
			o := int(openNow.Load())
			if kb > res.peakKB {
				res.peakKB = kb
			}
			if frozen {
				continue
			}
			if o > out.opened || (o == out.opened && kb > out.rssDuringKB) {
				out.opened, out.rssDuringKB = o, kb
				res.perKB = per
			}
			if o >= n && allOpen.IsZero() {
				allOpen = time.Now()
			}
			if (!allOpen.IsZero() && time.Since(allOpen) >= peakSettle) || time.Now().After(fallback) {
				frozen = true
				if atPeak != nil {
					atPeak()
				}
			}
		}
	}()
	for i := 0; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := oneStream(client, target, key, words, &openNow)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.failed++
				if out.firstError == "" {
					out.firstError = err.Error()
				}
				return
			}
			out.completed++
		}()
	}
	wg.Wait()
	close(done)
	<-sampled
	return res
}

// oneStream sends one streaming request and checks that it ended with response.completed
// after every delta; it counts itself open from its headers to its end.
func oneStream(client *http.Client, target, key string, words int, openNow *atomic.Int64) error {
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(goalsStreamBody))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	openNow.Add(1)
	b, err := io.ReadAll(resp.Body)
	openNow.Add(-1)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %.200s", resp.StatusCode, b)
	}
	frames := parseFrames(b)
	deltas := 0
	for _, f := range frames {
		if string(f.name) == "response.output_text.delta" {
			deltas++
		}
	}
	if len(frames) == 0 || string(frames[len(frames)-1].name) != "response.completed" || deltas != words {
		return fmt.Errorf("%d events with %d deltas (want %d), not ended by response.completed", len(frames), deltas, words)
	}
	return nil
}
