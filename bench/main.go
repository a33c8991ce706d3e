// Command bench puts the same load on three targets in one run and prints requests/s and
// latency percentiles for each, non-stream and stream, with the ratios between them:
//
//	(a) upstream  the fake upstream directly
//	(b) traefik   Traefik without the plugin, proxying to the fake upstream
//	(c) gateway   the whole gateway: Traefik + poolgate plugin + controlsvc + fake upstream
//
// and then the saturated case (saturated.go): a user with concurrency 2 and 16 clients, so
// requests queue for slots, against the same number of requests in flight without queueing,
// with the admission overhead per request, and the convert part (convert.go): one long
// stream relayed as it is and converted from Anthropic Messages to Responses events, in
// events per second and per Traefik CPU second, and the goals part (goals.go): the goals
// (goaleval.go) against Traefik alone and an empty Yaegi plugin, each PASS or FAIL, with the
// breakdown of the added time by stage, whose plugin rows come from the stage benchmark
// (stages.go: tests/yaegi/stagebench). -only compare|saturated|convert|goals|stages runs one part;
// -d and -warmup shorten a run, -streams lowers the open-streams count (for trying it out);
// -only streams runs the open-streams phase alone (at -rate), -pprof saves Traefik's
// profiles with the streams open.
//
// Figures are only comparable within one run on one machine; the ratios are the point.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
	"github.com/poolgate/poolgate/internal/testenv"
)

func main() {
	var (
		bin         = flag.String("bin", "bin", "directory holding traefik, controlsvc and fakeupstream")
		concurrency = flag.Int("c", 16, "concurrent clients")
		duration    = flag.Duration("d", 5*time.Second, "measuring time per case")
		warmup      = flag.Duration("warmup", time.Second, "warm-up time per case")
		only        = flag.String("only", "", "run only the cases of one part: compare (upstream, traefik, gateway), saturated, convert, goals, stages (the plugin's stages under Yaegi, no stack) or streams (the open-streams phase of goals alone)")
		streams     = flag.Int("streams", targetStreams, "goals, streams: streams to hold open at once (the goal is 10000; fewer fails it)")
		rate        = flag.Float64("rate", 200, "streams: streams started per second (goals derives it from the stream throughput)")
		prof        = flag.String("pprof", "", "goals, streams: save profiles in this directory: CPU of Traefik and controlsvc during each gateway case of goals, heap and goroutines of each Traefik with the streams open")
	)
	flag.Parse()
	switch *only {
	case "", "compare", "saturated", "convert", "goals", "stages", "streams":
	default:
		fmt.Fprintln(os.Stderr, "bench: -only must be compare, saturated, convert, goals, stages or streams")
		os.Exit(2)
	}
	if *rate <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -rate must be positive")
		os.Exit(2)
	}
	if *only == "stages" {
		// The plugin's stages alone (stages.go): no stack needed.
		if err := runStages(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *streams < 1 {
		fmt.Fprintln(os.Stderr, "bench: -streams must be at least 1")
		os.Exit(2)
	}
	// Before any child starts: they inherit the limit (Go restores the original soft limit
	// in children unless the program sets it itself).
	nofile := raiseNoFile()
	if *prof != "" {
		*prof, _ = filepath.Abs(*prof)
	}
	if err := run(*bin, *only, *concurrency, *duration, *warmup, streamsFlags{*streams, *rate, *prof}, nofile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// streamsFlags are the open-streams phase's settings.
type streamsFlags struct {
	want    int
	rate    float64 // -only streams: started per second
	profDir string
}

func run(bin, only string, conc int, dur, warm time.Duration, streams streamsFlags, nofile string) error {
	ctx := context.Background()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "poolgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, _ = filepath.Abs(bin)

	opts := stack.Options{
		Dir: dir, RepoRoot: root,
		TraefikBin:      filepath.Join(bin, "traefik"),
		ControlsvcBin:   filepath.Join(bin, "controlsvc"),
		FakeupstreamBin: filepath.Join(bin, "fakeupstream"),
	}
	var prof profTargets
	if streams.profDir != "" {
		if prof, err = profOptions(&opts, streams.profDir); err != nil {
			return err
		}
	}
	st, err := stack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer st.Stop()
	fmt.Printf("poolgate bench: %s per case (after %s warm-up), %d cores; %s\n", dur, warm, numCPU(), nofile)
	var errs []error
	if only == "" || only == "compare" {
		errs = append(errs, runCompare(ctx, st, bin, dir, conc, dur, warm))
	}
	if only == "" || only == "saturated" {
		errs = append(errs, runSaturated(st, dur, warm))
	}
	if only == "" || only == "convert" {
		errs = append(errs, runConvert(ctx, st, bin, dir, conc, dur, warm))
	}
	if only == "" || only == "goals" {
		errs = append(errs, runGoals(ctx, st, bin, dir, root, dur, warm, streams, prof))
	}
	if only == "streams" {
		out, err := runStreams(ctx, bin, root, filepath.Join(dir, "streams"), streams.want, streams.rate, streams.profDir)
		printGoals(streamGoals(out))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// runCompare puts the same load on the fake upstream, a plain Traefik and the gateway.
func runCompare(ctx context.Context, st *stack.Stack, bin, dir string, conc int, dur, warm time.Duration) error {
	key, err := seed(st, conc)
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	plain, _, stopPlain, err := startPlainTraefik(ctx, filepath.Join(bin, "traefik"), filepath.Join(dir, "plain"), st.FakeURL)
	if err != nil {
		return err
	}
	defer stopPlain()

	const body = `{"model":"gpt-4o-mini","input":"Write one short sentence about load testing."}`
	const streamBody = `{"model":"gpt-4o-mini","input":"Write one short sentence about load testing.","stream":true}`
	targets := []struct{ name, url, key string }{
		{"upstream", st.FakeURL + "/v1/responses", "sk-bench-upstream"},
		{"traefik", plain + "/v1/responses", "sk-bench-upstream"},
		{"gateway", st.GatewayURL + "/v1/responses", key},
	}
	fmt.Printf("\nsame load on three targets: %d concurrent clients\n", conc)
	fmt.Printf("%-8s %-10s %10s %10s %10s %8s\n", "mode", "target", "req/s", "p50", "p99", "errors")
	results := map[string]result{}
	leaked := false
	for _, mode := range []string{"json", "stream"} {
		b := body
		if mode == "stream" {
			b = streamBody
		}
		for _, tg := range targets {
			load(tg.url, tg.key, b, conc, warm)
			r := load(tg.url, tg.key, b, conc, dur)
			results[mode+"/"+tg.name] = r
			fmt.Printf("%-8s %-10s %10.0f %10s %10s %8d\n", mode, tg.name, r.rps, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.errors)
			if r.firstError != "" {
				fmt.Printf("         e.g. %s\n", r.firstError)
			}
			if tg.name == "gateway" {
				if err := waitSlotsFree(st, slotDrainTimeout); err != nil {
					fmt.Printf("         slot leak: %v\n", err)
					leaked = true
				}
			}
		}
	}
	fmt.Printf("\nratios (req/s)            json    stream\n")
	for _, pair := range [][2]string{{"traefik", "upstream"}, {"gateway", "traefik"}, {"gateway", "upstream"}} {
		fmt.Printf("%-8s / %-10s %10.2f %9.2f\n", pair[0], pair[1],
			results["json/"+pair[0]].rps/results["json/"+pair[1]].rps,
			results["stream/"+pair[0]].rps/results["stream/"+pair[1]].rps)
	}
	fmt.Printf("\nadded p50 latency of the gateway over Traefik alone: json %s, stream %s\n",
		(results["json/gateway"].p50 - results["json/traefik"].p50).Round(10*time.Microsecond),
		(results["stream/gateway"].p50 - results["stream/traefik"].p50).Round(10*time.Microsecond))
	if leaked {
		return errors.New("slots were still held after the load stopped")
	}
	return nil
}

// slotDrainTimeout bounds how long the slots of finished requests may stay held after a
// gateway case: far less than the 60 s lease TTL, so only releases by completion reports
// can bring the counts back to 0 in time.
const slotDrainTimeout = 3 * time.Second

// waitSlotsFree waits until controlsvc reports no live user or account slot. Held slots
// after every request has finished mean a leak: the bench user's generous concurrency must
// not hide one.
func waitSlotsFree(st *stack.Stack, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		active, err := liveSlots(st)
		if err == nil && active == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("%d slots still held %s after the last request", active, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveSlots sums the active user and account slots of GET /api/v1/admin/concurrency.
func liveSlots(st *stack.Stack) (int64, error) {
	req, _ := http.NewRequest("GET", st.ControlAdminURL+"/api/v1/admin/concurrency", nil)
	req.Header.Set("Authorization", "Bearer "+st.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Users    []struct{ Active int64 } `json:"users"`
		Accounts []struct{ Active int64 } `json:"accounts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET /concurrency: %s %v", resp.Status, err)
	}
	var n int64
	for _, u := range out.Users {
		n += u.Active
	}
	for _, a := range out.Accounts {
		n += a.Active
	}
	return n, nil
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
	// aborted counts the errors that are a 200 reply cut short (unexpected EOF); ok the
	// requests answered in full.
	aborted, ok int
	// firstError describes one failed request, so a broken case is visible in the output.
	firstError string
}

// load runs conc closed-loop clients for d against one URL.
func load(url, key, body string, conc int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2, MaxConnsPerHost: conc * 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		mu    sync.Mutex
		lats  []time.Duration
		nErr  int
		cut   int
		first string
		wg    sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad, aborted, why := 0, 0, ""
			for time.Now().Before(stop) {
				t0 := time.Now()
				req, _ := http.NewRequest("POST", url, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					bad++
					why = err.Error()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					bad++
					if resp.StatusCode == 200 && errors.Is(err, io.ErrUnexpectedEOF) {
						aborted++
					}
					why = fmt.Sprintf("%d %.200s %v", resp.StatusCode, b, err)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			nErr += bad
			cut += aborted
			if first == "" {
				first = why
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	r := result{errors: nErr, aborted: cut, ok: len(lats), firstError: first, rps: float64(len(lats)) / elapsed.Seconds()}
	if len(lats) > 0 {
		r.p50 = lats[len(lats)*50/100]
		r.p99 = lats[len(lats)*99/100]
	}
	return r
}

// slotHeadroom is the user's and the account's concurrency per client.
const slotHeadroom = 16

// seed creates a user with room for the load, a group, one fake-upstream account and a key.
func seed(st *stack.Stack, conc int) (string, error) {
	call := func(path string, body any) (map[string]any, error) { return adminPost(st, path, body) }
	// Slots are released by completion reports, which travel in batches after the response:
	// on a saturated machine a report batch can lag tens of milliseconds, during which the
	// clients' next requests already hold new slots. The bench measures throughput, not the
	// limit, so give room well above the client count (leaks are caught by waitSlotsFree).
	u, err := call("/users", map[string]any{"name": "bench", "concurrency": conc * slotHeadroom, "balance_usd": 1000000})
	if err != nil {
		return "", err
	}
	g, err := call("/groups", map[string]any{"name": "bench", "platform": "openai"})
	if err != nil {
		return "", err
	}
	if _, err := call("/accounts", map[string]any{
		"name": "bench", "platform": "openai", "base_url": st.FakeURL,
		"credential": map[string]any{"api_key": "sk-bench-upstream"}, "concurrency": conc * slotHeadroom,
		"group_ids": []any{g["id"]},
	}); err != nil {
		return "", err
	}
	k, err := call("/api-keys", map[string]any{"user_id": u["id"], "group_id": g["id"], "name": "bench"})
	if err != nil {
		return "", err
	}
	key, _ := k["key"].(string)
	return key, nil
}

// adminPost calls the admin API of controlsvc and decodes its JSON answer.
func adminPost(st *stack.Stack, path string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", st.ControlAdminURL+"/api/v1/admin"+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+st.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: %s %v", path, resp.Status, out)
	}
	return out, nil
}

// startPlainTraefik runs a second Traefik with no plugin, routing /v1/ to the fake upstream:
// the baseline that shows what the plugin and controlsvc add. It returns its URL and its
// process id.
func startPlainTraefik(ctx context.Context, traefikBin, dir, upstream string) (string, int, func(), error) {
	return startBaselineTraefik(ctx, traefikBin, dir, upstream, false)
}

// startBaselineTraefik runs a Traefik routing /v1/ to the fake upstream, with no middleware
// or, with noop, only the empty Yaegi plugin of floor.go.
func startBaselineTraefik(ctx context.Context, traefikBin, dir, upstream string, noop bool) (string, int, func(), error) {
	return startBaseline(ctx, traefikBin, dir, upstream, noop, "", "")
}

// startBaseline is startBaselineTraefik with, when debugAddr is set, Traefik's API and its
// debug endpoints (pprof) served there, and with certFile set, that certificate trusted
// (an https upstream: the fake's TLS listener).
func startBaseline(ctx context.Context, traefikBin, dir, upstream string, noop bool, debugAddr, certFile string) (string, int, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, nil, err
	}
	addr, err := testenv.FreeAddr()
	if err != nil {
		return "", 0, nil, err
	}
	static := fmt.Sprintf("entryPoints:\n  web:\n    address: %q\nproviders:\n  file:\n    filename: dynamic.yml\napi:\n  dashboard: false\nping:\n  entryPoint: web\nlog:\n  level: WARN\n", addr)
	dynamic := fmt.Sprintf("http:\n  routers:\n    ai:\n      entryPoints: [web]\n      rule: PathPrefix(`/v1/`)\n      service: upstream\n  services:\n    upstream:\n      loadBalancer:\n        servers:\n          - url: %q\n", upstream)
	if noop {
		if err := installNoopPlugin(dir); err != nil {
			return "", 0, nil, err
		}
		static += noopStatic
		dynamic = strings.Replace(dynamic, "      service: upstream\n", "      service: upstream\n      middlewares: [noop]\n", 1) + noopDynamic
	}
	if debugAddr != "" {
		b, err := stack.WithDebugAPI([]byte(static), debugAddr)
		if err != nil {
			return "", 0, nil, err
		}
		static = string(b)
	}
	if err := os.WriteFile(filepath.Join(dir, "traefik.yml"), []byte(static), 0o644); err != nil {
		return "", 0, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "dynamic.yml"), []byte(dynamic), 0o644); err != nil {
		return "", 0, nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "traefik.log"))
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(traefikBin, "--configFile="+filepath.Join(dir, "traefik.yml"))
	cmd.Dir = dir
	if certFile != "" {
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	}
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		// /ping answers before the file provider's routers are in: wait for the route to
		// the upstream, whose GET answer (405 from the fake upstream) is not Traefik's 404.
		resp, err := http.Get(url + "/v1/messages")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				return url, cmd.Process.Pid, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", 0, nil, fmt.Errorf("plain traefik not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
