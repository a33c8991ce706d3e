package main

import (
	"strings"
	"testing"
	"time"
)

func TestAddedP50Goal(t *testing.T) {
	us := time.Microsecond
	for _, tc := range []struct {
		name             string
		gateway, traefik result
		pass             bool
	}{
		{"well under", result{p50: 400 * us}, result{p50: 180 * us}, true},
		{"exactly 0.5 ms added", result{p50: 680 * us}, result{p50: 180 * us}, true},
		{"just over", result{p50: 681 * us}, result{p50: 180 * us}, false},
		{"today's 4.6 ms", result{p50: 4650 * us}, result{p50: 180 * us}, false},
		{"failed requests fail it", result{p50: 200 * us, errors: 3}, result{p50: 180 * us}, false},
		{"no gateway request", result{}, result{p50: 180 * us}, false},
		{"no traefik request", result{p50: 200 * us}, result{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := addedP50Goal(tc.gateway, tc.traefik)
			if g.pass != tc.pass {
				t.Fatalf("pass = %v, want %v (%s %s)", g.pass, tc.pass, g.got, g.note)
			}
			if g.verdict() != map[bool]string{true: "PASS", false: "FAIL"}[tc.pass] {
				t.Fatalf("verdict %s", g.verdict())
			}
		})
	}
}

func TestThroughputShareGoal(t *testing.T) {
	for _, tc := range []struct {
		name             string
		gateway, traefik result
		pass             bool
	}{
		{"half", result{rps: 4274}, result{rps: 8548}, true},
		{"above half", result{rps: 6000}, result{rps: 8548}, true},
		{"below half", result{rps: 4273}, result{rps: 8548}, false},
		{"today's 3 %", result{rps: 266}, result{rps: 8548}, false},
		{"no baseline", result{rps: 100}, result{}, false},
		{"errors in the baseline", result{rps: 8000}, result{rps: 8548, errors: 1}, false},
		{"baseline streams cut short, a few", result{rps: 6000}, result{rps: 8548, errors: 5, aborted: 5, ok: 14000}, true},
		{"baseline streams cut short, too many", result{rps: 6000}, result{rps: 8548, errors: 200, aborted: 200, ok: 1000}, false},
		{"baseline cut short and other errors", result{rps: 6000}, result{rps: 8548, errors: 6, aborted: 5, ok: 14000}, false},
		{"the gateway's replies cut short are not tolerated", result{rps: 6000, errors: 1, aborted: 1, ok: 30000}, result{rps: 8548}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if g := throughputShareGoal("json", tc.gateway, tc.traefik); g.pass != tc.pass {
				t.Fatalf("pass = %v, want %v (%s %s)", g.pass, tc.pass, g.got, g.note)
			}
		})
	}
}

func TestScalingGoal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lo, hi result
		pass   bool
	}{
		{"grows", result{rps: 195}, result{rps: 266}, true},
		{"equal", result{rps: 266}, result{rps: 266}, true},
		{"falls", result{rps: 266}, result{rps: 265}, false},
		{"nothing at the lower count", result{}, result{rps: 10}, false},
		{"errors at the higher count", result{rps: 100}, result{rps: 200, errors: 5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if g := scalingGoal("json", 1, 32, tc.lo, tc.hi); g.pass != tc.pass {
				t.Fatalf("pass = %v, want %v (%s %s)", g.pass, tc.pass, g.got, g.note)
			}
		})
	}
}

func TestStreamGoals(t *testing.T) {
	full := streamsOutcome{target: 10000, opened: 10000, completed: 10000, rssBeforeKB: 100000}
	with := func(edit func(*streamsOutcome)) streamsOutcome { o := full; edit(&o); return o }
	for _, tc := range []struct {
		name          string
		o             streamsOutcome
		memory, count bool
		note          string
	}{
		{"64 KiB each, all complete", with(func(o *streamsOutcome) { o.rssDuringKB = 100000 + 64*10000 }), true, true, ""},
		{"a kB over", with(func(o *streamsOutcome) { o.rssDuringKB = 100000 + 64*10000 + 10 }), false, true, ""},
		{"one failed", with(func(o *streamsOutcome) {
			o.rssDuringKB = 200000
			o.completed, o.failed, o.firstError = 9999, 1, "unexpected EOF"
		}), true, false, "unexpected EOF"},
		{"not all open at once", with(func(o *streamsOutcome) { o.rssDuringKB = 200000; o.opened = 9000 }), true, false, "not all open"},
		{"machine limit", with(func(o *streamsOutcome) {
			o.target, o.opened, o.completed, o.rssDuringKB = 9800, 9800, 9800, 200000
			o.limitNote = "machine limit: Traefik's open-files limit 20000"
		}), true, false, "machine limit"},
		{"nothing open", streamsOutcome{target: 10000}, false, false, "not all open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := streamGoals(tc.o)
			if len(g) != 2 {
				t.Fatalf("%d goals", len(g))
			}
			if g[0].pass != tc.memory || g[1].pass != tc.count {
				t.Fatalf("memory %v count %v, want %v %v (%s / %s)", g[0].pass, g[1].pass, tc.memory, tc.count, g[0].got, g[1].got)
			}
			if !strings.Contains(g[1].note, tc.note) {
				t.Fatalf("note %q, want it to contain %q", g[1].note, tc.note)
			}
		})
	}
}

func TestPerStreamBytes(t *testing.T) {
	o := streamsOutcome{opened: 4, rssBeforeKB: 1000, rssDuringKB: 1256}
	if got := o.perStreamBytes(); got != 64*1024 {
		t.Fatalf("perStreamBytes = %d, want %d", got, 64*1024)
	}
	if got := (streamsOutcome{rssDuringKB: 5}).perStreamBytes(); got != 0 {
		t.Fatalf("no stream open: %d", got)
	}
}

func TestParseVmRSS(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		kb       int64
		bad      bool
	}{
		{"status file", "Name:\ttraefik\nVmPeak:\t 2000000 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 100000 kB\n", 123456, false},
		{"no VmRSS (kernel thread)", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, true},
		{"not a number", "VmRSS:\t lots kB\n", 0, true},
		{"other unit", "VmRSS:\t 12 MB\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kb, err := parseVmRSS([]byte(tc.in))
			if (err != nil) != tc.bad || kb != tc.kb {
				t.Fatalf("parseVmRSS = %d, %v; want %d, error %v", kb, err, tc.kb, tc.bad)
			}
		})
	}
}

func TestParseMaxOpenFiles(t *testing.T) {
	const head = "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n"
	for _, tc := range []struct {
		name, in string
		n        int64
		bad      bool
	}{
		{"a number", head + "Max open files            20000                20000                files     \n", 20000, false},
		{"soft below hard", head + "Max open files            1024                 524288               files     \n", 1024, false},
		{"unlimited", head + "Max open files            unlimited            unlimited            files     \n", -1, false},
		{"missing", head, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseMaxOpenFiles([]byte(tc.in))
			if (err != nil) != tc.bad || n != tc.n {
				t.Fatalf("parseMaxOpenFiles = %d, %v; want %d, error %v", n, err, tc.n, tc.bad)
			}
		})
	}
}

func TestStreamCapacity(t *testing.T) {
	for _, tc := range []struct {
		name               string
		limit              int64
		perStream, reserve int
		want               int
	}{
		{"this machine's Traefik", 20000, 2, 600, 9700},
		{"enough", 65536, 2, 400, 32568},
		{"below the reserve", 100, 2, 400, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := streamCapacity(tc.limit, tc.perStream, tc.reserve); got != tc.want {
				t.Fatalf("streamCapacity = %d, want %d", got, tc.want)
			}
		})
	}
	if streamCapacity(-1, 2, 400) < targetStreams {
		t.Fatal("unlimited must allow the target")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []int64
		want float64
	}{
		{"empty", nil, 0},
		{"odd", []int64{7, 3, 5}, 5},
		{"even", []int64{4, 1, 3, 2}, 2.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Fatalf("median = %v, want %v", got, tc.want)
			}
		})
	}
}
