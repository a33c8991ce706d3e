package plugin

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Clients that leave (docs/billing.md, "Disconnects, drains and estimates"): before the commit point the
// upstream is cut at once and nothing is billed; after it the attempt is drained within
// drainTimeout and billed from the upstream's usage, or by estimate.

const (
	respCreated   = `data: {"type":"response.created","response":{"id":"r","usage":null}}` + "\n\n"
	respDelta     = `data: {"type":"response.output_text.delta","delta":"hi"}` + "\n\n"
	respCompleted = `data: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":8,"output_tokens":2}}}` + "\n\n"
	respUsage     = `{"input_tokens":8,"output_tokens":2}`
)

// serveWatched serves h behind a real server, so that disconnects are real, and closes left
// once the request's context ended: from then on the plugin sees its client as gone.
func serveWatched(t *testing.T, h http.Handler) (string, chan struct{}) {
	t.Helper()
	left := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		context.AfterFunc(r.Context(), func() { once.Do(func() { close(left) }) })
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, left
}

// readAndLeave posts body and reads the answer up to the first line containing leaveAt,
// then hangs up ("" reads it all).
func readAndLeave(t *testing.T, url, path, body, leaveAt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if leaveAt == "" {
		_, _ = io.Copy(io.Discard, resp.Body)
		return
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if strings.Contains(line, leaveAt) {
			return // the deferred cancel and Close hang up
		}
		if err != nil {
			t.Fatalf("the answer ended before %q: %v", leaveAt, err)
		}
	}
}

// waitCancelled waits until the upstream saw its request cancelled by the plugin.
func waitCancelled(t *testing.T, up *testUpstream) {
	t.Helper()
	select {
	case <-up.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
}

func TestClientLeavesStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		path      string
		body      string
		anthropic bool   // served by an Anthropic account (converted)
		drain     string // drainTimeout; "" = the default 30s
		// reply is the upstream's answer; left closes when the client is gone.
		reply      func(left chan struct{}) upstreamReply
		leaveAt    string // the client hangs up after this line
		wantCut    bool   // the plugin cancels the upstream request (which never ends by itself)
		wantStatus int
		wantClass  string
		wantSource string
		wantUsage  string
		wantOutput int // output_bytes
	}{
		{name: "after the commit point: drained to the upstream's usage", path: "/v1/responses",
			body: `{"model":"m","stream":true}`,
			reply: func(left chan struct{}) upstreamReply {
				return upstreamReply{status: 200, gate: left, events: []string{respCreated + respDelta, respDelta + respCompleted}}
			},
			leaveAt: `"delta":"hi"`, wantStatus: 499, wantClass: classClientGone, wantSource: usageSourceUpstream,
			wantUsage: respUsage, wantOutput: len(respCreated + respDelta + respDelta + respCompleted)},
		{name: "the drain bound passes: estimate", path: "/v1/responses", body: `{"model":"m","stream":true}`, drain: "200ms",
			reply: func(chan struct{}) upstreamReply {
				return upstreamReply{status: 200, hold: true, events: []string{respCreated + respDelta}}
			},
			leaveAt: `"delta":"hi"`, wantCut: true, wantStatus: 499, wantClass: classClientGone, wantSource: usageSourceEstimate,
			wantOutput: len(respCreated + respDelta)},
		{name: "drainTimeout 0 cuts at once: estimate", path: "/v1/responses", body: `{"model":"m","stream":true}`, drain: "0s",
			reply: func(chan struct{}) upstreamReply {
				return upstreamReply{status: 200, hold: true, events: []string{respCreated + respDelta}}
			},
			leaveAt: `"delta":"hi"`, wantCut: true, wantStatus: 499, wantClass: classClientGone, wantSource: usageSourceEstimate,
			wantOutput: len(respCreated + respDelta)},
		{name: "closed right after response.completed", path: "/v1/responses", body: `{"model":"m","stream":true}`,
			reply: func(left chan struct{}) upstreamReply {
				// The upstream ends its body only after the client left.
				return upstreamReply{status: 200, gate: left, events: []string{respCreated + respDelta + respCompleted, ""}}
			},
			leaveAt: `"response.completed"`, wantStatus: 200, wantSource: usageSourceUpstream, wantUsage: respUsage,
			wantOutput: len(respCreated + respDelta + respCompleted)},
		{name: "closed right after [DONE]", path: "/v1/chat/completions", body: `{"model":"m","stream":true}`,
			reply: func(left chan struct{}) upstreamReply {
				return upstreamReply{status: 200, gate: left, events: []string{chatSSE, ""}}
			},
			leaveAt: `[DONE]`, wantStatus: 200, wantSource: usageSourceUpstream, wantUsage: chatUsage, wantOutput: len(chatSSE)},
		{name: "closed right after message_stop", path: "/v1/messages", body: `{"model":"m","max_tokens":5,"stream":true}`,
			reply: func(left chan struct{}) upstreamReply {
				return upstreamReply{status: 200, gate: left, events: []string{anthropicSSE, ""}}
			},
			leaveAt: `"message_stop"`, wantStatus: 200, wantSource: usageSourceUpstream, wantUsage: anthropicUsage,
			wantOutput: len(anthropicSSE)},
		{name: "a complete stream without usage: estimate", path: "/v1/responses", body: `{"model":"m","stream":true}`,
			reply: func(chan struct{}) upstreamReply {
				return upstreamReply{status: 200, events: []string{respCreated + respDelta + `data: {"type":"response.completed","response":{"id":"r"}}` + "\n\n"}}
			},
			wantStatus: 200, wantSource: usageSourceEstimate, wantOutput: -1},
		{name: "converted, after the commit point: drained to Anthropic's usage", path: "/v1/responses", anthropic: true,
			body: `{"model":"gpt-5","input":"hi","stream":true}`,
			reply: func(left chan struct{}) upstreamReply {
				return upstreamReply{status: 200, gate: left, events: []string{anthMsgStart + anthTextStart + anthHello,
					anthWorld + anthTextStop + anthMsgDelta + anthMsgStop}}
			},
			leaveAt: `"delta":"Hello"`, wantStatus: 499, wantClass: classClientGone, wantSource: usageSourceUpstream,
			wantUsage:  `{"input_tokens":10,"output_tokens":7,"cache_creation_input_tokens":2,"cache_read_input_tokens":5}`,
			wantOutput: len(anthMsgStart + anthTextStart + anthHello + anthWorld + anthTextStop + anthMsgDelta + anthMsgStop)},
		{name: "converted, closed right after response.completed", path: "/v1/responses", anthropic: true,
			body: `{"model":"gpt-5","input":"hi","stream":true}`,
			reply: func(left chan struct{}) upstreamReply {
				return upstreamReply{status: 200, gate: left, events: []string{strings.Join(anthFull, ""), ""}}
			},
			leaveAt: `"response.completed"`, wantStatus: 200, wantSource: usageSourceUpstream,
			wantUsage:  `{"input_tokens":10,"output_tokens":7,"cache_creation_input_tokens":2,"cache_read_input_tokens":5}`,
			wantOutput: len(strings.Join(anthFull, ""))},
		{name: "converted, the drain bound passes: estimate with message_start's usage", path: "/v1/responses", anthropic: true,
			body: `{"model":"gpt-5","input":"hi","stream":true}`, drain: "200ms",
			reply: func(chan struct{}) upstreamReply {
				return upstreamReply{status: 200, hold: true, events: []string{anthMsgStart + anthTextStart + anthHello}}
			},
			leaveAt: `"delta":"Hello"`, wantCut: true, wantStatus: 499, wantClass: classClientGone, wantSource: usageSourceEstimate,
			wantUsage:  `{"input_tokens":10,"output_tokens":1,"cache_creation_input_tokens":2,"cache_read_input_tokens":5}`,
			wantOutput: len(anthMsgStart + anthTextStart + anthHello)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1", anthropic: tt.anthropic})
			url, left := serveWatched(t, newTestHandler(t, stub, func(c *Config) {
				if tt.drain != "" {
					c.DrainTimeout = tt.drain
				}
			}))
			up.set("up-1", tt.reply(left))
			readAndLeave(t, url, tt.path, tt.body, tt.leaveAt)
			if tt.wantCut {
				waitCancelled(t, up)
			}
			r := stub.waitReport()
			usage := string(r.Usage)
			if jsonsse.IsNull(r.Usage) {
				usage = ""
			}
			if r.Status != tt.wantStatus || r.ErrorClass != tt.wantClass || r.UsageSource != tt.wantSource || usage != tt.wantUsage {
				t.Errorf("report status %d %q, usage_source %q, usage %s; want %d %q, %q, %s",
					r.Status, r.ErrorClass, r.UsageSource, r.Usage, tt.wantStatus, tt.wantClass, tt.wantSource, tt.wantUsage)
			}
			if (tt.wantOutput < 0 && r.OutputBytes <= 0) || (tt.wantOutput >= 0 && r.OutputBytes != int64(tt.wantOutput)) {
				t.Errorf("output_bytes %d, want %d", r.OutputBytes, tt.wantOutput)
			}
			if r.InputBytes != int64(len(tt.body)) {
				t.Errorf("input_bytes %d, want %d", r.InputBytes, len(tt.body))
			}
		})
	}
}

func TestClientLeavesBeforeCommitPoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		anthropic bool
		events    []string // held: none commits the stream
	}{
		{name: "pass-through", events: []string{respCreated, respDelta}},
		{name: "converted", anthropic: true, events: []string{anthMsgStart + anthTextStart, anthHello}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			gate := make(chan struct{}) // never opened: the upstream stops after the held events
			up.set("up-1", upstreamReply{status: 200, gate: gate, events: tt.events})
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1", anthropic: tt.anthropic})
			url := servePlugin(t, newTestHandler(t, stub, nil)) // drainTimeout 30s: the cut must not wait for it

			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				for len(up.recorded()) == 0 {
					time.Sleep(5 * time.Millisecond)
				}
				cancel()
			}()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/responses", strings.NewReader(`{"model":"m","input":"x","stream":true}`))
			req.Header.Set("Authorization", "Bearer "+testClientKey)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Fatalf("got an answer (%d) before the commit point", resp.StatusCode)
			}
			waitCancelled(t, up)
			r := stub.waitReport()
			if r.Status != 499 || r.ErrorClass != classClientGone || !jsonsse.IsNull(r.Usage) || r.UsageSource != usageSourceUpstream ||
				len(r.Attempts) != 1 || r.Attempts[0].ErrorClass != classClientGone {
				t.Errorf("report = %+v, usage %s", r, r.Usage)
			}
		})
	}
}

func TestWatchdogClientDeparture(t *testing.T) {
	t.Parallel()
	far := time.Now().Add(time.Hour)
	tests := []struct {
		name      string
		drain     time.Duration
		commit    bool   // the attempt passes its commit point before the client leaves
		wantCut   bool   // the attempt is cancelled (at once or after the drain)
		wantFired string // the deadline that cut it
	}{
		{name: "before the commit point: cut at once", drain: time.Hour, wantCut: true},
		{name: "after it: cut when the drain ends", drain: 50 * time.Millisecond, commit: true,
			wantCut: true, wantFired: classDrainTimeout},
		{name: "after it, drainTimeout 0: cut at once", commit: true, wantCut: true},
		{name: "after it, a long drain: not cut", drain: time.Hour, commit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, leave := context.WithCancel(context.Background())
			attempt, wd := newWatchdog(context.Background(), 0, 0, far)
			watchClient(wd, client, tt.drain)
			if tt.commit {
				if !commitAttempt(wd) {
					t.Fatal("commit refused while the client is there")
				}
				watchDrain(wd)
			}
			leave()
			if !tt.commit {
				select {
				case <-attempt.Done():
				case <-time.After(5 * time.Second):
				}
				if commitAttempt(wd) {
					t.Error("commit accepted after the client left")
				}
			}
			select {
			case <-attempt.Done():
				if !tt.wantCut {
					t.Error("the attempt was cut")
				}
			case <-time.After(time.Second):
				if tt.wantCut {
					t.Error("the attempt was not cut")
				}
			}
			if got := firedClass(wd); got != tt.wantFired {
				t.Errorf("fired %q, want %q", got, tt.wantFired)
			}
			wd.release()
		})
	}
}
