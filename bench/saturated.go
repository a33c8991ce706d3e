package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// The saturated case: one user whose concurrency is far below its clients, so nearly every
// request waits in the user's FIFO queue for a slot that a finishing request frees. It runs
// next to a free case with the same number of requests in flight and no queueing, in the
// same run, so the ratios show what waiting costs beyond the wait itself:
//
//   - throughput queued / free: 1.00 when a freed slot goes to the next waiter at no cost.
//     Both keep satLimit requests at the upstream; the queued case also pays, per request,
//     the slot release (completion report), the wake-up and the waiter's admission reply.
//   - slot time per request (limit / req/s): the hand-off overhead is the difference.
//   - time to upstream (client send → the fake upstream receives it: Traefik, the plugin, the
//     admission call, the queue wait, the forward) against upstream and back (the fake's
//     answer and the relay to the client), per request, matched by a header the plugin
//     forwards. With satClients clients on satLimit slots an ideal queue spends
//     1 - satLimit/satClients of the latency waiting.

const (
	satLimit   = 2  // the queued user's concurrency
	satClients = 16 // its clients; fewer than the user queue's 20 places (a full queue is a 429)
	// msgQueueFull is the only refusal the queued case may see: it is the queue doing its job.
	msgQueueFull = "Too many pending requests"
)

// tracedResult is a load result with the per-request split at the upstream.
type tracedResult struct {
	result
	expected   int             // refusals that are the queue working (queue full)
	toUpstream []time.Duration // sorted; client send → upstream arrival
	fromUp     []time.Duration // sorted; upstream arrival → response read
}

type sent struct {
	start, end time.Time
}

// loadTraced is load with every request tagged and timed, so that its arrival at the fake
// upstream can be matched. The tag travels in the body's metadata (body is a JSON object):
// the plugin forwards only the headers a provider needs, and metadata reaches the upstream
// as sent without changing the request's session. The fake's request log is cleared first: it keeps the last
// requests only (1000 by default), which are then this run's.
func loadTraced(st *stack.Stack, url, key, body, tag string, conc int, d time.Duration) (tracedResult, error) {
	if err := fakeControl(st, http.MethodDelete, "/_fake/requests", nil); err != nil {
		return tracedResult{}, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2, MaxConnsPerHost: conc * 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	var (
		mu       sync.Mutex
		lats     []time.Duration
		times    = map[string]sent{}
		bad, exp int
		first    string
		wg       sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				id := fmt.Sprintf("%s-%d-%d", tag, worker, n)
				t0 := time.Now()
				tagged := strings.TrimSuffix(body, "}") + `,"metadata":{"bench_id":"` + id + `"}}`
				req, _ := http.NewRequest("POST", url, strings.NewReader(tagged))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				var b []byte
				if err == nil {
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				t1 := time.Now()
				mu.Lock()
				switch {
				case err != nil:
					bad++
					first = err.Error()
				case resp.StatusCode == http.StatusTooManyRequests && strings.Contains(string(b), msgQueueFull):
					exp++
				case resp.StatusCode != http.StatusOK:
					bad++
					first = fmt.Sprintf("%d %.200s", resp.StatusCode, b)
				default:
					lats = append(lats, t1.Sub(t0))
					times[id] = sent{t0, t1}
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sortDurations(lats)
	r := tracedResult{result: result{errors: bad, firstError: first, rps: float64(len(lats)) / elapsed.Seconds()}, expected: exp}
	if len(lats) > 0 {
		r.p50, r.p99 = pct(lats, 50), pct(lats, 99)
	}
	arrivals, err := upstreamArrivals(st)
	if err != nil {
		return r, err
	}
	for id, at := range arrivals {
		s, ok := times[id]
		if !ok {
			continue
		}
		r.toUpstream = append(r.toUpstream, at.Sub(s.start))
		r.fromUp = append(r.fromUp, s.end.Sub(at))
	}
	if len(lats) > 0 && len(r.toUpstream) == 0 {
		// The split below would print zeros as if they were measured.
		return r, fmt.Errorf("none of the %d answered requests was found in the fake upstream's log by its bench_id", len(lats))
	}
	sortDurations(r.toUpstream)
	sortDurations(r.fromUp)
	return r, nil
}

// upstreamArrivals reads the fake upstream's request log: bench id → arrival time.
func upstreamArrivals(st *stack.Stack) (map[string]time.Time, error) {
	var log struct {
		Items []struct {
			Body string    `json:"body"`
			Time time.Time `json:"time"`
		} `json:"items"`
	}
	if err := fakeControl(st, http.MethodGet, "/_fake/requests", &log); err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(log.Items))
	for _, it := range log.Items {
		var tagged struct {
			Metadata struct {
				BenchID string `json:"bench_id"`
			} `json:"metadata"`
		}
		if json.Unmarshal([]byte(it.Body), &tagged) == nil && tagged.Metadata.BenchID != "" {
			out[tagged.Metadata.BenchID] = it.Time
		}
	}
	return out, nil
}

func fakeControl(st *stack.Stack, method, path string, out any) error {
	req, _ := http.NewRequest(method, st.FakeURL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on the fake upstream: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s on the fake upstream: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// seedSaturated creates a group with one roomy fake-upstream account and two users on it:
// one whose concurrency leaves room (free) and one limited to satLimit (queued).
func seedSaturated(st *stack.Stack) (freeKey, queuedKey string, err error) {
	g, err := adminPost(st, "/groups", map[string]any{"name": "bench-saturated", "platform": "openai"})
	if err != nil {
		return "", "", err
	}
	if _, err := adminPost(st, "/accounts", map[string]any{
		"name": "bench-saturated", "platform": "openai", "base_url": st.FakeURL,
		"credential": map[string]any{"api_key": "sk-bench-upstream"}, "concurrency": satClients * slotHeadroom,
		"group_ids": []any{g["id"]},
	}); err != nil {
		return "", "", err
	}
	keys := make([]string, 2)
	for i, limit := range []int{satLimit * slotHeadroom, satLimit} {
		u, err := adminPost(st, "/users", map[string]any{"name": fmt.Sprintf("bench-saturated-%d", limit),
			"concurrency": limit, "balance_usd": 1000000})
		if err != nil {
			return "", "", err
		}
		k, err := adminPost(st, "/api-keys", map[string]any{"user_id": u["id"], "group_id": g["id"], "name": "bench"})
		if err != nil {
			return "", "", err
		}
		keys[i], _ = k["key"].(string)
	}
	return keys[0], keys[1], nil
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// pct is the p-th percentile of sorted d (0 when empty).
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)*p/100]
}

// runSaturated runs the free and the queued case and prints them with their ratios. It
// fails on any unexpected error and on slots still held afterwards.
func runSaturated(st *stack.Stack, dur, warm time.Duration) error {
	freeKey, queuedKey, err := seedSaturated(st)
	if err != nil {
		return fmt.Errorf("seeding the saturated case: %w", err)
	}
	const body = `{"model":"gpt-4o-mini","input":"Write one short sentence about load testing."}`
	url := st.GatewayURL + "/v1/responses"
	cases := []struct {
		name, key string
		clients   int
	}{
		{fmt.Sprintf("free   (limit %d)", satLimit*slotHeadroom), freeKey, satLimit},
		{fmt.Sprintf("queued (limit %d)", satLimit), queuedKey, satClients},
	}
	fmt.Printf("\nuser concurrency saturated (json, gateway): %d requests in flight at the upstream either way\n", satLimit)
	fmt.Printf("%-18s %7s %8s %9s %9s %21s %14s %6s %8s\n", "case", "clients", "req/s", "p50", "p99",
		"to upstream p50/p99", "upstream+back", "errors", "refused")
	var res []tracedResult
	var failed []string
	for _, c := range cases {
		if _, err := loadTraced(st, url, c.key, body, "warm", c.clients, warm); err != nil {
			return err
		}
		if err := waitSlotsFree(st, slotDrainTimeout); err != nil {
			return fmt.Errorf("after the warm-up of %s: %w", c.name, err)
		}
		r, err := loadTraced(st, url, c.key, body, "run", c.clients, dur)
		if err != nil {
			return err
		}
		res = append(res, r)
		fmt.Printf("%-18s %7d %8.0f %9s %9s %10s/%-10s %14s %6d %8d\n", c.name, c.clients, r.rps, round(r.p50), round(r.p99),
			round(pct(r.toUpstream, 50)), round(pct(r.toUpstream, 99)), round(pct(r.fromUp, 50)), r.errors, r.expected)
		if r.firstError != "" {
			fmt.Printf("                   e.g. %s\n", r.firstError)
		}
		if r.errors > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d requests failed", c.name, r.errors))
		}
		if err := waitSlotsFree(st, slotDrainTimeout); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
		} else {
			fmt.Printf("%-18s slots back to 0 after the case\n", "")
		}
	}
	free, queued := res[0], res[1]
	if free.rps == 0 || queued.rps == 0 {
		return errors.New("a saturated case served no request")
	}
	slotFree := time.Duration(float64(satLimit) / free.rps * float64(time.Second))
	slotQueued := time.Duration(float64(satLimit) / queued.rps * float64(time.Second))
	fmt.Printf("\nthroughput queued / free                 %6.2f   (1.00: a freed slot goes to the next waiter at no cost)\n",
		queued.rps/free.rps)
	fmt.Printf("slot time per request (limit / req/s)    free %s, queued %s: hand-off overhead %s per request\n",
		round(slotFree), round(slotQueued), round(slotQueued-slotFree))
	fmt.Printf("time to upstream / latency (mean)        free %4.1f%%, queued %4.1f%%   (ideal queued: %.1f%% waiting)\n",
		share(free), share(queued), 100*(1-float64(satLimit)/float64(satClients)))
	fmt.Printf("admission overhead unqueued (p50)        %s to reach the upstream vs %s upstream and back: ratio %.2f\n",
		round(pct(free.toUpstream, 50)), round(pct(free.fromUp, 50)), ratio(pct(free.toUpstream, 50), pct(free.fromUp, 50)))
	fmt.Printf("latency p50 queued / free                %6.2f   (ideal: %d clients / %d slots = %.2f)\n",
		ratio(queued.p50, free.p50), satClients, satLimit, float64(satClients)/float64(satLimit))
	if len(failed) > 0 {
		return errors.New("saturated case: " + strings.Join(failed, "; "))
	}
	return nil
}

// share is the part of the latency spent before the requests reached the upstream, in %.
func share(r tracedResult) float64 {
	var to, all time.Duration
	for i := range r.toUpstream {
		to += r.toUpstream[i]
		all += r.toUpstream[i] + r.fromUp[i]
	}
	if all == 0 {
		return 0
	}
	return 100 * float64(to) / float64(all)
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
