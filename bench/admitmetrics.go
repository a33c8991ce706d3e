package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// controlsvc's own time per grant, from its /metrics counters (docs/design.md, "Metrics"):
// read before and after a run, the difference of poolgate_admission_microseconds_total over
// that of the granted admissions is the mean time controlsvc spent per granted admit call.

type admitCounters struct{ granted, micros int64 }

func readAdmitCounters(st *stack.Stack) (admitCounters, error) {
	resp, err := http.Get(st.MetricsURL + "/metrics")
	if err != nil {
		return admitCounters{}, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return admitCounters{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var c admitCounters
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case `poolgate_admissions_total{result="granted"}`:
			c.granted = n
		case `poolgate_admission_microseconds_total{result="granted"}`:
			c.micros = n
		}
	}
	return c, sc.Err()
}

// meanSince is the mean time per grant between before and c; ok is false without grants.
func (c admitCounters) meanSince(before admitCounters) (time.Duration, int64, bool) {
	n := c.granted - before.granted
	if n <= 0 {
		return 0, 0, false
	}
	return time.Duration((c.micros-before.micros)/n) * time.Microsecond, n, true
}

// controlsvcWork is controlsvc's mean time per grant over a run, or why it is unknown.
type controlsvcWork struct {
	mean   time.Duration
	grants int64
	err    error
}

func measuredWork(st *stack.Stack, before admitCounters, beforeErr error) controlsvcWork {
	if beforeErr != nil {
		return controlsvcWork{err: beforeErr}
	}
	after, err := readAdmitCounters(st)
	if err != nil {
		return controlsvcWork{err: err}
	}
	mean, n, ok := after.meanSince(before)
	if !ok {
		return controlsvcWork{err: fmt.Errorf("no grant counted in /metrics during the run")}
	}
	return controlsvcWork{mean: mean, grants: n}
}
