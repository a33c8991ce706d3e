package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// Running the convert part's cases (convert.go): closed-loop clients, Traefik's CPU time
// around the measured interval, and the fake upstream's log checked afterwards.

// measureStream runs one case: a warm-up, then the measured load with Traefik's CPU time
// read around it, then the check of the upstream paths. A failed response fails the case
// (but for the aborts a case tolerates, see streamCase.tolerateAborts).
func measureStream(st *stack.Stack, c streamCase, conc int, dur, warm time.Duration) (streamResult, error) {
	if err := fakeControl(st, http.MethodDelete, "/_fake/requests", nil); err != nil {
		return streamResult{}, err
	}
	if w := loadStream(c, conc, warm, false); w.failed() {
		return w, fmt.Errorf("%d of %d responses failed in the warm-up, e.g. %s", w.errors+w.aborted, w.errors+w.aborted+w.responses, w.firstError)
	}
	r := loadStream(c, conc, dur, true)
	if r.failed() {
		return r, fmt.Errorf("%d of %d responses failed, e.g. %s", r.errors+r.aborted, r.errors+r.aborted+r.responses, r.firstError)
	}
	if r.responses == 0 {
		return r, errors.New("no response completed")
	}
	if r.cpu <= 0 {
		return r, errors.New("the CPU time of Traefik did not advance")
	}
	return r, checkUpstreamPaths(st, c)
}

// failed: a response failed, or more than a tenth of the streams were cut short (at least
// one is tolerated: a paced warm-up has only a few streams).
func (r streamResult) failed() bool {
	return r.errors > 0 || r.aborted > int(math.Ceil(float64(r.aborted+r.responses)/10))
}

// errAborted marks a stream that ended abruptly (no end of the chunked body).
var errAborted = errors.New("stream cut short")

// loadStream runs conc closed-loop clients for d, each checking every response; measured,
// it also reads the CPU time the case's Traefik spent over the same interval.
func loadStream(c streamCase, conc int, d time.Duration, measured bool) streamResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2, MaxConnsPerHost: conc * 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	var (
		mu  sync.Mutex
		res streamResult
		wg  sync.WaitGroup
	)
	pid := 0
	if measured {
		pid = c.pid
	}
	cpu0, _ := traefikCPU(pid)
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				events, err := streamOnce(client, c, n == 0)
				mu.Lock()
				switch {
				case c.tolerateAborts && errors.Is(err, errAborted):
					res.aborted++
					res.events += events
					if res.errors == 0 { // a real error's message wins
						res.firstError = err.Error()
					}
				case err != nil:
					res.errors++
					res.firstError = err.Error()
				default:
					res.responses++
					res.events += events
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if pid != 0 {
		if cpu1, err := traefikCPU(pid); err == nil {
			res.cpu = cpu1 - cpu0
		}
	}
	return res
}

// streamOnce sends one request of the case and checks its stream (deep: every event). It
// returns the events delivered: on errAborted, those that came before the cut.
func streamOnce(client *http.Client, c streamCase, deep bool) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, c.base+c.path, strings.NewReader(c.body))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			n := len(parseFrames(b))
			return n, fmt.Errorf("reading the stream: %w after %d events (%w)", err, n, errAborted)
		}
		return 0, fmt.Errorf("reading the stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%d %.200s", resp.StatusCode, b)
	}
	frames := parseFrames(b)
	if err := checkStream(c, frames); err != nil {
		return 0, err
	}
	if deep {
		if err := checkStreamDeep(c, frames); err != nil {
			return 0, err
		}
	}
	return len(frames), nil
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, which is 100 on Linux
// whatever the kernel's internal HZ.
const userHZ = 100

// traefikCPU is the user+system CPU time the process has used (0 and no error for pid 0).
func traefikCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields count from
	// the last ')'. utime and stime are fields 14 and 15, so 11 and 12 after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %.100s", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %.100s", pid, b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	sys, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %.100s", pid, b)
	}
	return time.Duration(ut+sys) * time.Second / userHZ, nil
}

// checkUpstreamPaths reads the fake upstream's request log (cleared before the case) and
// requires every request with the case's credential at the case's upstream path.
func checkUpstreamPaths(st *stack.Stack, c streamCase) error {
	var log struct {
		Items []struct {
			Path    string      `json:"path"`
			Headers http.Header `json:"headers"`
		} `json:"items"`
	}
	if err := fakeControl(st, http.MethodGet, "/_fake/requests", &log); err != nil {
		return err
	}
	seen := 0
	for _, it := range log.Items {
		if it.Headers.Get("X-Api-Key") != c.cred && it.Headers.Get("Authorization") != "Bearer "+c.cred {
			continue
		}
		seen++
		if it.Path != c.upstreamPath {
			return fmt.Errorf("the fake upstream was asked %s, not %s: the gateway did not serve this case as intended", it.Path, c.upstreamPath)
		}
	}
	if seen == 0 {
		return fmt.Errorf("the fake upstream logged no request with the case's credential")
	}
	return nil
}
