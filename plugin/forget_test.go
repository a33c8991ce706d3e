package plugin

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// A committed stream lets go of the request's body (forgetRequest): while it stays open the
// plugin holds no copy of an 8 MB request beyond the one the upstream transport keeps for
// its request. Not parallel: the heap is read while no other test runs.
func TestCommittedStreamForgetsTheRequestBody(t *testing.T) {
	const size = 8 << 20
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1,\"total_tokens\":2}}}\n\n")
	}))
	defer up.Close()
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.URL, apiKey: "acct-1"})
	gw := httptest.NewServer(newTestHandler(t, stub, nil))
	defer gw.Close()

	body := `{"model":"gpt-4o","stream":true,"input":"` + strings.Repeat("x", size) + `"}`
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/responses", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	req.Header.Set("Content-Type", "application/json")
	body = ""
	before := heapInUse()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			close(release)
			t.Fatalf("the stream ended before its first delta: %v", err)
		}
		if strings.Contains(line, `"delta":"hi"`) {
			break
		}
	}
	held := heapInUse() - before
	close(release)
	rest, _ := io.ReadAll(rd)
	if !strings.Contains(string(rest), "response.completed") {
		t.Fatalf("the stream did not complete: %q", rest)
	}
	// Held without forgetRequest: the body, its decoded input and the buffer's spare room
	// (about 3 × 8 MB); with it: the transport's request alone, the body at its length.
	if held > 3*size/2 {
		t.Errorf("an open stream of an 8 MB request holds %.1f MB of heap, want at most %.1f",
			float64(held)/(1<<20), float64(3*size/2)/(1<<20))
	}
	if r := stub.waitReport(); r.InputBytes != int64(len(`{"model":"gpt-4o","stream":true,"input":""}`)+size) {
		t.Errorf("report input_bytes = %d, want the body's length", r.InputBytes)
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
