package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// CPU time per request by process during a run: what each part of the server side costs,
// read from /proc (utime + stime of each process of a tree, plus what its reaped children
// used). Throughput at c=32 is bound by this sum on a machine whose cores it saturates, so
// it shows which process the gateway's throughput goal is lost in, and how much of
// Traefik's own time the interpreted plugin adds over the empty plugin's floor.

// procTimes maps each live pid to its parent and its CPU time, own plus reaped children's.
func procTimes() (parent map[int]int, cpu map[int]time.Duration) {
	parent, cpu = map[int]int{}, map[int]time.Duration{}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var ticks int64
		for _, k := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			n, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += n
		}
		parent[pid], cpu[pid] = ppid, time.Duration(ticks)*time.Second/userHZ
	}
	return parent, cpu
}

// treeCPU is the CPU time of each root's process tree.
func treeCPU(roots []int) []time.Duration {
	parent, cpu := procTimes()
	out := make([]time.Duration, len(roots))
	for i, root := range roots {
		if root <= 0 {
			continue
		}
		for pid, t := range cpu {
			for p := pid; p > 1; p = parent[p] {
				if p == root {
					out[i] += t
					break
				}
			}
		}
	}
	return out
}

// cpuParts names the process trees of a measurement; pids of 0 are left out.
type cpuParts struct {
	names []string
	pids  []int
}

func (c cpuParts) add(name string, pids ...int) cpuParts {
	for _, p := range pids {
		if p > 0 {
			c.names, c.pids = append(c.names, name), append(c.pids, p)
		}
	}
	return c
}

// cpuRun is what a run cost each part.
type cpuRun struct {
	parts    cpuParts
	used     []time.Duration
	requests int
}

// measureCPU runs f and returns the CPU each part used during it.
func measureCPU(parts cpuParts, f func() result) (result, cpuRun) {
	before := treeCPU(parts.pids)
	r := f()
	after := treeCPU(parts.pids)
	used := make([]time.Duration, len(before))
	for i := range before {
		used[i] = after[i] - before[i]
	}
	return r, cpuRun{parts: parts, used: used, requests: r.ok}
}

// perRequest prints the run's CPU per answered request, part by part, summed by name.
func (c cpuRun) perRequest() string {
	if c.requests <= 0 {
		return "no request answered"
	}
	sums := map[string]time.Duration{}
	var order []string
	var total time.Duration
	for i, n := range c.parts.names {
		if _, seen := sums[n]; !seen {
			order = append(order, n)
		}
		sums[n] += c.used[i]
		total += c.used[i]
	}
	var b strings.Builder
	for _, n := range order {
		fmt.Fprintf(&b, "%s %s, ", n, round(sums[n]/time.Duration(c.requests)))
	}
	fmt.Fprintf(&b, "sum %s", round(total/time.Duration(c.requests)))
	return b.String()
}

// serverParts are the server-side processes of a goals case: the Traefik it targets and,
// for the gateway, controlsvc, PostgreSQL and Redis.
func serverParts(st *stack.Stack, target string, plainPID, floorPID int) cpuParts {
	var p cpuParts
	switch target {
	case tgTraefik:
		return p.add("traefik", plainPID)
	case tgFloor:
		return p.add("traefik+empty plugin", floorPID)
	}
	return p.add("traefik+plugin", st.TraefikPID()).add("controlsvc", st.ControlsvcPIDs()...).
		add("postgres", st.PostgresPID()).add("redis", st.RedisPID())
}
