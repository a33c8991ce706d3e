package plugin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// bigReply is a non-streaming Responses reply of at least size bytes, usage last.
func bigReply(size int) string {
	return `{"id":"resp_1","output_text":"` + strings.Repeat("word ", size/5) +
		`","usage":{"input_tokens":11,"output_tokens":50000}}`
}

func TestJSONUsageScannerMemoryIsBounded(t *testing.T) {
	reply := []byte(bigReply(5 << 20))
	s := newUsageScanner(usageResponses, false)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for off := 0; off < len(reply); off += copyBufferSize {
		end := off + copyBufferSize
		if end > len(reply) {
			end = len(reply)
		}
		feedUsage(s, reply[off:end])
	}
	runtime.ReadMemStats(&after)
	if got := string(scannedUsage(s)); got != `{"input_tokens":11,"output_tokens":50000}` || !hasFinalUsage(s) {
		t.Fatalf("usage = %s", got)
	}
	// Nothing of the reply is kept: only the usage object and a few bytes of carry.
	if held := cap(s.body.capture) + cap(s.body.found) + cap(s.body.tail); held > 4<<10 {
		t.Errorf("the scanner holds %d bytes after a %d-byte reply", held, len(reply))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 { // a copy would be 5 MiB
		t.Errorf("scanning a %d-byte reply allocated %d bytes", len(reply), alloc)
	}
}

func TestNonStreamReplyBilling(t *testing.T) {
	t.Parallel()
	big := bigReply(5 << 20)
	tests := []struct {
		name       string
		body       string
		wantSource string
		wantUsage  string
	}{
		{"5 MiB reply: usage found", big, usageSourceUpstream, `{"input_tokens":11,"output_tokens":50000}`},
		{"2xx without usage: estimate", `{"id":"resp_1","output_text":"hi"}`, usageSourceEstimate, ""},
		{"2xx that is not JSON: estimate", `<html>ok</html>`, usageSourceEstimate, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", upstreamReply{status: 200, body: tt.body})
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
			rec := do(newTestPlugin(t, stub, nil), "/v1/responses", `{"model":"m","max_output_tokens":64}`, nil)
			if rec.Code != 200 || rec.Body.Len() != len(tt.body) {
				t.Fatalf("status %d, %d bytes of %d", rec.Code, rec.Body.Len(), len(tt.body))
			}
			r := stub.waitReport()
			usage := string(r.Usage)
			if jsonsse.IsNull(r.Usage) {
				usage = ""
			}
			if r.Status != 200 || r.ErrorClass != "" || r.UsageSource != tt.wantSource || usage != tt.wantUsage ||
				r.OutputBytes != int64(len(tt.body)) || r.MaxOutputTokens != 64 || r.InputBytes != int64(len(`{"model":"m","max_output_tokens":64}`)) {
				t.Errorf("report status %d %q, usage_source %q, usage %s, output_bytes %d, max_output_tokens %d, input_bytes %d",
					r.Status, r.ErrorClass, r.UsageSource, usage, r.OutputBytes, r.MaxOutputTokens, r.InputBytes)
			}
		})
	}
}

func TestNonStreamClientLeavesMidReply(t *testing.T) {
	t.Parallel()
	head := `{"id":"resp_1","output_text":"` + strings.Repeat("x", 64<<10) + "\n"
	tail := `","usage":{"input_tokens":11,"output_tokens":5}}`
	tests := []struct {
		name       string
		drain      string
		stall      bool // the upstream never sends the rest
		wantSource string
		wantUsage  string
		wantOutput int
	}{
		{"drained to the upstream's usage", "", false, usageSourceUpstream, `{"input_tokens":11,"output_tokens":5}`, len(head + tail)},
		{"the drain bound passes: estimate", "200ms", true, usageSourceEstimate, "", len(head)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			leftBox := make(chan chan struct{}, 1) // the plugin's server is made after the upstream's
			cut := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, head)
				w.(http.Flusher).Flush()
				if tt.stall {
					<-r.Context().Done()
					close(cut)
					return
				}
				<-(<-leftBox) // the rest comes once the client is gone
				io.WriteString(w, tail)
			}))
			t.Cleanup(up.Close)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.URL, apiKey: "up-1"})
			url, left := serveWatched(t, newTestHandler(t, stub, func(c *Config) {
				if tt.drain != "" {
					c.DrainTimeout = tt.drain
				}
			}))
			leftBox <- left

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/responses", strings.NewReader(`{"model":"m"}`))
			req.Header.Set("Authorization", "Bearer "+testClientKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			// Part of the answer arrived (a non-stream reply is not flushed: the last bytes may
			// sit in the server's buffer).
			if _, err := io.ReadFull(resp.Body, make([]byte, 32<<10)); err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d, reading the answer: %v", resp.StatusCode, err)
			}
			cancel()
			resp.Body.Close()
			if tt.stall {
				select {
				case <-cut:
				case <-time.After(5 * time.Second):
					t.Fatal("the upstream request was not cancelled after the drain bound")
				}
			}
			r := stub.waitReport()
			usage := string(r.Usage)
			if jsonsse.IsNull(r.Usage) {
				usage = ""
			}
			if r.Status != 499 || r.ErrorClass != classClientGone || r.UsageSource != tt.wantSource || usage != tt.wantUsage ||
				r.OutputBytes != int64(tt.wantOutput) {
				t.Errorf("report status %d %q, usage_source %q, usage %s, output_bytes %d; want 499, %q, %s, %d",
					r.Status, r.ErrorClass, r.UsageSource, usage, r.OutputBytes, tt.wantSource, tt.wantUsage, tt.wantOutput)
			}
		})
	}
}
