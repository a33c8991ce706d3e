package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// The goals part: the cases the goals need, on three targets in one run —
// Traefik alone, Traefik with the empty Yaegi plugin (the floor, floor.go) and the whole
// gateway — then the open-streams phase (streams.go), then the goal table (goaleval.go) and
// the breakdown of the added time by stage (breakdown.go).

// goalCase is one load: a mode, a target and a client count.
type goalCase struct {
	mode, target string
	conc         int
	traced       bool // c=1 non-stream: matched at the fake upstream for the breakdown (all three, so their p50s compare)
}

const (
	tgTraefik = "traefik"
	tgFloor   = "floor"
	tgGateway = "gateway"
)

// goalCases in the order they run. The gateway's c=32 and c=256 cases, which the scaling
// goals compare, run in scalingRounds alternating rounds and count by their median: both
// saturate the server, so their ratio is near 1 and one run each would decide the goal by
// the noise of the moment (and by whatever grows over the run, such as the ledger).
var goalCases = func() []goalCase {
	cs := []goalCase{
		{"json", tgTraefik, 1, true}, {"json", tgFloor, 1, true}, {"json", tgGateway, 1, true},
		{"json", tgTraefik, 32, false}, {"json", tgFloor, 32, false},
	}
	for i := 0; i < scalingRounds; i++ {
		cs = append(cs, goalCase{"json", tgGateway, 32, false}, goalCase{"json", tgGateway, 256, false})
	}
	cs = append(cs, goalCase{"stream", tgGateway, 1, false},
		goalCase{"stream", tgTraefik, 32, false}, goalCase{"stream", tgFloor, 32, false})
	for i := 0; i < scalingRounds; i++ {
		cs = append(cs, goalCase{"stream", tgGateway, 32, false}, goalCase{"stream", tgGateway, 256, false})
	}
	return cs
}()

// scalingRounds is how often the gateway's c=32 and c=256 cases run.
const scalingRounds = 3

// medianRun is the run with the median throughput (the later of the middle two).
func medianRun(runs []result) result {
	if len(runs) == 0 {
		return result{}
	}
	sorted := append([]result(nil), runs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].rps < sorted[j].rps })
	return sorted[len(sorted)/2]
}

func caseKey(mode, target string, conc int) string {
	return fmt.Sprintf("%s/%s/%d", mode, target, conc)
}

// goalKeys: c1 carries the c=1 non-stream gateway case alone, so that its usage records
// are that case's (breakdown); load carries the others.
type goalKeys struct {
	c1, load string
	c1ID     int64
}

// seedGoals creates a user and an account with room for the widest case, and the keys.
func seedGoals(st *stack.Stack) (goalKeys, error) {
	const room = 256 * slotHeadroom
	u, err := adminPost(st, "/users", map[string]any{"name": "bench-goals", "concurrency": room, "balance_usd": 1000000})
	if err != nil {
		return goalKeys{}, err
	}
	g, err := adminPost(st, "/groups", map[string]any{"name": "bench-goals", "platform": "openai"})
	if err != nil {
		return goalKeys{}, err
	}
	if _, err := adminPost(st, "/accounts", map[string]any{
		"name": "bench-goals", "platform": "openai", "base_url": st.FakeURL,
		"credential": map[string]any{"api_key": "sk-bench-upstream"}, "concurrency": room,
		"group_ids": []any{g["id"]},
	}); err != nil {
		return goalKeys{}, err
	}
	var keys goalKeys
	for _, name := range []string{"c1", "load"} {
		k, err := adminPost(st, "/api-keys", map[string]any{"user_id": u["id"], "group_id": g["id"], "name": "bench-goals-" + name})
		if err != nil {
			return goalKeys{}, err
		}
		key, _ := k["key"].(string)
		if name == "c1" {
			keys.c1 = key
			id, _ := k["id"].(float64)
			keys.c1ID = int64(id)
		} else {
			keys.load = key
		}
	}
	return keys, nil
}

// runGoals runs the cases, the open-streams phase and prints the goal table and breakdown.
func runGoals(ctx context.Context, st *stack.Stack, bin, dir, root string, dur, warm time.Duration, sf streamsFlags, prof profTargets) error {
	keys, err := seedGoals(st)
	if err != nil {
		return fmt.Errorf("seeding the goals: %w", err)
	}
	plain, plainPID, stopPlain, err := startPlainTraefik(ctx, filepath.Join(bin, "traefik"), filepath.Join(dir, "plain-goals"), st.FakeURL)
	if err != nil {
		return err
	}
	defer stopPlain()
	floor, floorPID, stopFloor, err := startBaselineTraefik(ctx, filepath.Join(bin, "traefik"), filepath.Join(dir, "floor"), st.FakeURL, true)
	if err != nil {
		return fmt.Errorf("the empty Yaegi plugin (floor): %w", err)
	}
	defer stopFloor()

	fmt.Printf("\ngoals: Traefik alone, Traefik + empty Yaegi plugin (floor) and the gateway, same run\n")
	fmt.Printf("%-7s %-8s %5s %10s %10s %10s %7s\n", "mode", "target", "c", "req/s", "p50", "p99", "errors")
	res := map[string][]result{}
	var traced = map[string]tracedResult{}
	var failed []string
	var work controlsvcWork // controlsvc's time per grant in the traced c=1 run
	for _, c := range goalCases {
		body := goalsBody
		if c.mode == "stream" {
			body = goalsStreamBody
		}
		url, key := plain, "sk-bench-upstream"
		switch c.target {
		case tgFloor:
			url = floor
		case tgGateway:
			url, key = st.GatewayURL, keys.load
			if c.traced {
				key = keys.c1
			}
		}
		url += "/v1/responses"
		var r result
		var cpu cpuRun
		if c.traced {
			if _, err := loadTraced(st, url, key, body, "warm", c.conc, warm); err != nil {
				return err
			}
			before, berr := readAdmitCounters(st)
			done := prof.cpu(c, dur)
			tr, err := loadTraced(st, url, key, body, "run", c.conc, dur)
			done()
			if err != nil {
				return err
			}
			if c.target == tgGateway {
				work = measuredWork(st, before, berr)
			}
			traced[c.target] = tr
			r = tr.result
		} else {
			load(url, key, body, c.conc, warm)
			done := prof.cpu(c, dur)
			r, cpu = measureCPU(serverParts(st, c.target, plainPID, floorPID), func() result { return load(url, key, body, c.conc, dur) })
			done()
		}
		k := caseKey(c.mode, c.target, c.conc)
		res[k] = append(res[k], r)
		fmt.Printf("%-7s %-8s %5d %10.0f %10s %10s %7d\n", c.mode, c.target, c.conc, r.rps, round(r.p50), round(r.p99), r.errors)
		if !c.traced {
			fmt.Printf("        CPU per request: %s\n", cpu.perRequest())
		}
		if r.firstError != "" {
			fmt.Printf("        e.g. %s\n", r.firstError)
		}
		if c.target == tgGateway {
			if err := waitSlotsFree(st, slotDrainTimeout); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", caseKey(c.mode, c.target, c.conc), err))
				fmt.Printf("        slot leak: %v\n", err)
			}
		}
	}
	get := func(mode, target string, conc int) result { return medianRun(res[caseKey(mode, target, conc)]) }
	for _, k := range []string{caseKey("json", tgGateway, 32), caseKey("json", tgGateway, 256),
		caseKey("stream", tgGateway, 32), caseKey("stream", tgGateway, 256)} {
		fmt.Printf("%s: req/s of the %d rounds %s, median %.0f\n", k, len(res[k]), rpsList(res[k]), medianRun(res[k]).rps)
	}
	fmt.Printf("\nthe floor: what the interpreter costs before any of poolgate's work\n")
	for _, c := range []struct {
		mode string
		conc int
	}{{"json", 1}, {"json", 32}, {"stream", 32}} {
		t, f, g := get(c.mode, tgTraefik, c.conc), get(c.mode, tgFloor, c.conc), get(c.mode, tgGateway, c.conc)
		fmt.Printf("  %-6s c=%-3d req/s floor / Traefik %.2f, gateway / floor %.2f; p50 added: floor %s, gateway over floor %s\n",
			c.mode, c.conc, safeDiv(f.rps, t.rps), safeDiv(g.rps, f.rps), round(f.p50-t.p50), round(g.p50-f.p50))
	}

	// Three quarters of the gateway's stream throughput at c=32: admission keeps up while
	// the streams open, and the ramp (which every stream must outlast) stays short.
	rate := math.Min(math.Max(get("stream", tgGateway, 32).rps*3/4, 20), 1000)
	streams, err := runStreams(ctx, bin, root, filepath.Join(dir, "streams"), sf.want, rate, sf.profDir)
	if err != nil {
		failed = append(failed, fmt.Sprintf("open streams: %v", err))
		fmt.Printf("\nopen streams: FAILED: %v\n", err)
	}

	goals := []goal{
		addedP50Goal(get("json", tgGateway, 1), get("json", tgTraefik, 1)),
		throughputShareGoal("non-stream", get("json", tgGateway, 32), get("json", tgTraefik, 32)),
		throughputShareGoal("stream", get("stream", tgGateway, 32), get("stream", tgTraefik, 32)),
		scalingGoal("non-stream", 1, 32, get("json", tgGateway, 1), get("json", tgGateway, 32)),
		scalingGoal("non-stream", 32, 256, get("json", tgGateway, 32), get("json", tgGateway, 256)),
		scalingGoal("stream", 1, 32, get("stream", tgGateway, 1), get("stream", tgGateway, 32)),
		scalingGoal("stream", 32, 256, get("stream", tgGateway, 32), get("stream", tgGateway, 256)),
	}
	goals = append(goals, streamGoals(streams)...)
	printGoals(goals)
	if err := printBreakdown(st, keys.c1ID, traced[tgGateway], traced[tgTraefik], traced[tgFloor].result, work); err != nil {
		failed = append(failed, fmt.Sprintf("breakdown: %v", err))
	}
	if len(failed) > 0 {
		return errors.New("goals: " + joinSemi(failed))
	}
	return nil
}

const (
	goalsBody       = `{"model":"gpt-4o-mini","input":"Write one short sentence about load testing."}`
	goalsStreamBody = `{"model":"gpt-4o-mini","input":"Write one short sentence about load testing.","stream":true}`
)

func rpsList(runs []result) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("%.0f", r.rps)
	}
	return strings.Join(parts, ", ")
}

func joinSemi(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "; "
		}
		out += x
	}
	return out
}
