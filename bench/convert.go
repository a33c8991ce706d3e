package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// The converted-stream part: converted-stream events per second per core next to the
// pass-through figure. The fake upstream streams one long
// answer, convDeltas text deltas, each its own SSE event flushed on its own as providers
// send them, and the gateway delivers it three ways in the same run:
//
//   - messages pass-through: /v1/messages on an anthropic group; the plugin relays the
//     Anthropic events and only watches them (usage, the commit point);
//   - responses pass-through: /v1/responses on an openai group, the same for OpenAI's events;
//   - responses converted: /v1/responses on an anthropic group, fed the same Anthropic stream
//     as the first case; the plugin converts every event into Responses events.
//
// and, as the baseline, a plain Traefik without the plugin relays the Messages stream.
//
// Per case: the events delivered to the clients per second, and per Traefik CPU second: the
// events divided by the user+system CPU time Traefik's process spent during the measured
// interval (/proc/<pid>/stat). The machine is shared by the clients, the fake upstream and
// controlsvc, so events per Traefik CPU second is the figure that compares; converted /
// messages pass-through is the cost of converting, per event, and the CPU per event over
// the plain Traefik's is what the plugin adds.
//
// Each case runs in two modes. burst: the fake sends the events back to back, so the
// plugin's reads carry many events each and the per-read cost is shared, which flatters
// the pass-through, whose work is per read, against the conversion, whose work is per
// event. paced: pacedDelayMS between events, so nearly every read carries one event, as
// when a real provider streams; throughput is then bounded by the pace, and the figure is
// the CPU per event.
//
// A bench that measured failures would be worse than none, so every response is checked
// (checkStream) and the fake upstream's request log must show every request of a case at
// the path the case expects: /v1/messages for the converted case, where an unconverted
// forward to /v1/responses would otherwise yield an equally valid-looking stream. A case
// with any error prints FAILED and no figures (the baseline tolerates a few aborted
// streams, see tolerateAborts).

const (
	convDeltas = 2000 // text deltas per streamed answer
	// pacedDelayMS is the fake upstream's pause between the events of a paced stream.
	pacedDelayMS = 1
)

// streamCase is one way of delivering the long stream.
type streamCase struct {
	name, path   string
	mode         string // burst or paced
	base         string // the Traefik asked: the gateway's or the plain one's URL
	pid          int    // that Traefik's process id
	key, cred    string // the client's key; the upstream account's credential
	body         string
	deltaEvent   string // the event carrying one text delta
	lastEvent    string // the event that must end every response
	events       int    // events per response
	responses    bool   // Responses events: sequence_number counts from 0
	upstreamPath string // where the fake upstream must have been asked
	// tolerateAborts: the case tolerates streams cut short (unexpected EOF), up to a
	// tenth of them; set for the plain Traefik only. Its ReverseProxy starts the response
	// while its transport may still be reading the client's request body to its end; Go's
	// HTTP/1 server then closes that body, the transport drops the upstream connection and
	// the stream is aborted ("ReverseProxy read error during body copy: … use of closed
	// network connection", traefik/traefik#11767, golang/go#15527): seen here for 1 in
	// 4000 burst and 1 to 6 in 100 paced streams. The plugin reads the body itself before
	// forwarding and is not exposed to it. The events an aborted stream delivered count.
	tolerateAborts bool
}

// streamResult is one case's measurement: the successful responses and their events.
type streamResult struct {
	responses, events, errors int
	aborted                   int // streams cut short, when tolerated
	firstError                string
	elapsed, cpu              time.Duration // wall time; Traefik's CPU time in it
}

func (r streamResult) eventsPerSec() float64 { return float64(r.events) / r.elapsed.Seconds() }

func (r streamResult) eventsPerCPUSec() float64 {
	if r.cpu <= 0 {
		return 0
	}
	return float64(r.events) / r.cpu.Seconds()
}

// perEvent is Traefik's CPU time per delivered event.
func perEvent(r streamResult) time.Duration {
	if r.events == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.events)
}

// traefikProc is a running Traefik the cases load.
type traefikProc struct {
	url  string
	pid  int
	stop func()
}

// plainCase names the baseline: the Messages stream through Traefik without the plugin.
const plainCase = "traefik, no plugin"

// runConvert seeds the groups, runs the cases and prints them with the ratios.
func runConvert(ctx context.Context, st *stack.Stack, bin, dir string, conc int, dur, warm time.Duration) error {
	gw := traefikProc{url: st.GatewayURL, pid: st.TraefikPID()}
	if _, err := traefikCPU(gw.pid); err != nil {
		return fmt.Errorf("convert: reading Traefik's CPU time: %w", err)
	}
	var plain traefikProc
	var err error
	plain.url, plain.pid, plain.stop, err = startPlainTraefik(ctx, filepath.Join(bin, "traefik"), filepath.Join(dir, "plain-convert"), st.FakeURL)
	if err != nil {
		return err
	}
	defer plain.stop()
	cases, err := seedConvert(st, conc, gw, plain)
	if err != nil {
		return fmt.Errorf("seeding the convert cases: %w", err)
	}
	fmt.Printf("\nlong streams, pass-through and converted: %d text deltas per answer, %d concurrent clients;\n", convDeltas, conc)
	fmt.Printf("burst: events back to back, paced: %d ms between events (about one event per read)\n", pacedDelayMS)
	fmt.Printf("%-6s %-22s %-13s %7s %7s %10s %8s %14s %9s %6s\n", "mode", "case", "path", "ev/resp", "resp/s",
		"events/s", "traefik", "ev/traefik-s", "cpu/ev", "errors")
	res := map[string]streamResult{}
	var failed []string
	for _, c := range cases {
		r, err := measureStream(st, c, conc, dur, warm)
		if err != nil {
			fmt.Printf("%-6s %-22s %-13s FAILED: %v\n", c.mode, c.name, c.path, err)
			failed = append(failed, fmt.Sprintf("%s %s: %v", c.mode, c.name, err))
		} else {
			res[c.mode+"/"+c.name] = r
			fmt.Printf("%-6s %-22s %-13s %7d %7.1f %10.0f %7.2fc %14.0f %9s %6d\n", c.mode, c.name, c.path, c.events,
				float64(r.responses)/r.elapsed.Seconds(), r.eventsPerSec(), r.cpu.Seconds()/r.elapsed.Seconds(),
				r.eventsPerCPUSec(), perEvent(r).Round(10*time.Nanosecond), r.errors)
			if r.aborted > 0 {
				fmt.Printf("%-6s %-22s and %d streams cut short (tolerated here, see below): %s\n", "", "", r.aborted, r.firstError)
			}
		}
		if err := waitSlotsFree(st, slotDrainTimeout); err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", c.mode, c.name, err))
			fmt.Printf("%-6s %-22s slot leak: %v\n", "", "", err)
		}
	}
	fmt.Println("(traefik: cores Traefik used; ev/traefik-s: events per Traefik CPU second; cpu/ev: its inverse;")
	fmt.Printf(" %q may have up to a tenth of its streams cut short by traefik/traefik#11767,\n", plainCase)
	fmt.Println(" a race of Traefik's proxy with the request body; the events they delivered count)")
	fmt.Printf("\nratios                                  events/s   events per Traefik CPU second\n")
	for _, mode := range []string{"burst", "paced"} {
		conv, okConv := res[mode+"/responses converted"]
		for _, base := range []string{"messages pass-through", "responses pass-through"} {
			b, ok := res[mode+"/"+base]
			if !ok || !okConv {
				continue
			}
			fmt.Printf("%-6s converted / %-23s %8.2f %10.2f\n", mode, base,
				conv.eventsPerSec()/b.eventsPerSec(), conv.eventsPerCPUSec()/b.eventsPerCPUSec())
		}
	}
	fmt.Printf("\nTraefik CPU per event added over %s\n", plainCase)
	for _, mode := range []string{"burst", "paced"} {
		p, ok := res[mode+"/"+plainCase]
		if !ok {
			continue
		}
		fmt.Printf("%-6s", mode)
		for _, name := range []string{"messages pass-through", "responses converted"} {
			if r, ok := res[mode+"/"+name]; ok {
				fmt.Printf("   %s %s", name, (perEvent(r) - perEvent(p)).Round(100*time.Nanosecond))
			}
		}
		fmt.Println()
	}
	if len(failed) > 0 {
		return errors.New("convert: " + strings.Join(failed, "; "))
	}
	return nil
}
