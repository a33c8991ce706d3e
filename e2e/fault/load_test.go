package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
)

type obj = gatewaytest.Obj

// streamBody is a streaming request whose first user message is its own: the plugin derives
// a session from the content when no session header is sent, and identical requests would
// all be one sticky session, queueing on one account's small sticky queue.
func streamBody() string {
	return fmt.Sprintf(`{"model":"gpt-4o-mini","input":"hello %d","stream":true}`, bodySeq.Add(1))
}

var bodySeq atomic.Int64

// answer is what one client saw of one request.
type answer struct {
	user               int // index of the load spec that sent it
	status             int
	reqID              string
	body               string // the body of an answer other than a 200
	complete           bool   // a 200 stream that reached response.completed
	err                string // transport error, or the stream broke
	sent, headers, end time.Time
}

// sendResponses posts body to /v1/responses with key and returns the answer so far (sent,
// headers, status, request id) and the response, nil when the request failed (a.err set).
func sendResponses(ctx context.Context, c *gatewaytest.Client, key, body string, hdr map[string]string) (answer, *http.Response) {
	a := answer{sent: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.S.GatewayURL+"/v1/responses", strings.NewReader(body))
	if err != nil {
		a.err = err.Error()
		return a, nil
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	a.headers = time.Now()
	if err != nil {
		a.err, a.end = err.Error(), a.headers
		return a, nil
	}
	a.status, a.reqID = resp.StatusCode, resp.Header.Get("X-Poolgate-Request-Id")
	return a, resp
}

// streamRequest sends one streaming /v1/responses request and reads it to its end.
func streamRequest(ctx context.Context, c *gatewaytest.Client, key string, hdr map[string]string) answer {
	a, resp := sendResponses(ctx, c, key, streamBody(), hdr)
	if resp == nil {
		return a
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		a.body, a.end = string(b), time.Now()
		return a
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: response.completed") {
			a.complete = true
		}
	}
	if err := sc.Err(); err != nil {
		a.err = "reading the stream: " + err.Error()
	}
	a.end = time.Now()
	return a
}

// clearUnavailable reports whether a is the gateway's own 503: a JSON error object with a
// message, in the client's API format.
func clearUnavailable(a answer) bool {
	if a.status != http.StatusServiceUnavailable || a.err != "" {
		return false
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	return json.Unmarshal([]byte(a.body), &e) == nil && e.Error.Message != ""
}

// loadSpec is one user's share of a load: workers sending requests back to back.
type loadSpec struct {
	key     string
	workers int
}

// underLoad runs the load while scenario runs, and tail longer; a worker that got a 503
// backs off as a client would, so the run is not spent on refusals.
func underLoad(t *testing.T, c *gatewaytest.Client, specs []loadSpec, scenario func(ctx context.Context) error, tail time.Duration) []answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var (
		mu  sync.Mutex
		out []answer
		wg  sync.WaitGroup
	)
	for u, sp := range specs {
		for w := 0; w < sp.workers; w++ {
			wg.Add(1)
			go func(u int, key string) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					a := streamRequest(ctx, c, key, nil)
					a.user = u
					mu.Lock()
					out = append(out, a)
					mu.Unlock()
					if a.status != http.StatusOK {
						time.Sleep(200 * time.Millisecond)
					}
				}
			}(u, sp.key)
		}
	}
	err := scenario(ctx)
	if err == nil {
		time.Sleep(tail)
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].sent.Before(out[j].sent) })
	return out
}

// outcome sorts the answers of a load: complete 200 streams by user, clear 503s, the rest.
type outcome struct {
	okIDs       map[int][]string
	unavailable []answer
	others      []string
}

func classify(answers []answer) outcome {
	o := outcome{okIDs: map[int][]string{}}
	for _, a := range answers {
		switch {
		case a.status == http.StatusOK && a.complete && a.err == "" && a.reqID != "":
			o.okIDs[a.user] = append(o.okIDs[a.user], a.reqID)
		case clearUnavailable(a):
			o.unavailable = append(o.unavailable, a)
		default:
			o.others = append(o.others, fmt.Sprintf("status %d complete %v id %q err %q body %.200q (sent %s)",
				a.status, a.complete, a.reqID, a.err, a.body, a.sent.Format("15:04:05.000")))
		}
	}
	return o
}

// checkUserLedger checks one user's records against the 200s the clients saw and the
// balance against the records, and returns the number of records.
func checkUserLedger(t *testing.T, c *gatewaytest.Client, tn gatewaytest.Tenant, okIDs []string, initialMicros int64) int {
	t.Helper()
	records := c.DrainedUsage(tn.KeyID, len(okIDs), 45*time.Second)
	spent := gatewaytest.CheckLedger(t, records, okIDs)
	balance, reserved := c.Balance(tn.UserID)
	if balance != initialMicros-spent {
		t.Fatalf("user %d: balance %d micros, want %d - %d (Σ of %d usage records)", tn.UserID, balance, initialMicros, spent, len(records))
	}
	t.Logf("user %d: %d records, %d micros spent, %d micros still reserved", tn.UserID, len(records), spent, reserved)
	return len(records)
}

// maxOverlap is the largest number of answers of the given users streaming at one instant
// at or after from. A stream's [headers, end] lies inside the time its slots are held, so
// more overlapping streams than a limit means the limit was broken.
func maxOverlap(answers []answer, users map[int]bool, from time.Time) int {
	type ev struct {
		at time.Time
		d  int
	}
	var evs []ev
	for _, a := range answers {
		if !users[a.user] || a.status != http.StatusOK || !a.end.After(from) {
			continue
		}
		start := a.headers
		if start.Before(from) {
			start = from
		}
		evs = append(evs, ev{start, 1}, ev{a.end, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at.Equal(evs[j].at) {
			return evs[i].d < evs[j].d // an end before a start at the same instant
		}
		return evs[i].at.Before(evs[j].at)
	})
	n, max := 0, 0
	for _, e := range evs {
		n += e.d
		if n > max {
			max = n
		}
	}
	return max
}

// words is a text of n words: a stream of n deltas.
func words(n int) string {
	return strings.TrimSpace(strings.Repeat("word ", n))
}
