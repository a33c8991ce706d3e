package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/testenv"
)

// SIGTERM with an admission waiting in a queue and a report batch under way: the waiter gets
// the retryable 503 shutting_down, the batch is acknowledged (it releases the slots and
// bills), the process exits 0 well within its allowance, and nothing stays held.
func TestSIGTERMAnswersWaitersAndFinishesReports(t *testing.T) {
	dbURL, redisURL := testenv.PostgresURL(t), testenv.RedisURL(t)
	p := startBinary(t, dbURL, redisURL, "admin-token-abc-987-0123456789abcdef", testPluginSecret)
	base := "http://" + p.addr
	f := seed(t, dbURL)
	rdb := testenv.RedisClient(t, redisURL)

	holder := mustGrant(t, post(context.Background(), base+"/internal/v1/admit", admitBody(f, "req_holder")))
	waited := make(chan answer, 1)
	go func() { waited <- post(context.Background(), base+"/internal/v1/admit", admitBody(f, "req_waiter")) }()
	waitQueued(t, rdb, f, 1)

	// The holder's report is under way when the signal comes: half its body is sent.
	body, _ := json.Marshal(reportBody(holder))
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	if _, err := fmt.Fprintf(conn, "POST /internal/v1/reports HTTP/1.1\r\nHost: controlsvc\r\nX-Poolgate-Secret: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", testPluginSecret, len(body), body[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server has started on the request

	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var res answer
	select {
	case res = <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting admission got no answer after SIGTERM")
	}
	if res.err != nil || res.status != http.StatusServiceUnavailable || res.header.Get("X-Poolgate-Reject") != "shutting_down" ||
		res.header.Get("Retry-After") != "1" {
		t.Fatalf("waiter got %d reject %q Retry-After %q %s (%v), want 503 shutting_down with Retry-After 1",
			res.status, res.header.Get("X-Poolgate-Reject"), res.header.Get("Retry-After"), res.body, res.err)
	}
	if want := `{"error":{"type":"api_error","message":"Service is restarting, please retry"}}`; string(res.body) != want {
		t.Errorf("waiter body %s, want %s", res.body, want)
	}

	if _, err := conn.Write(body[half:]); err != nil {
		t.Fatalf("finishing the report: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("report reply: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantAccepted(t, answer{status: resp.StatusCode, body: data})

	p.waitExit(t, 20*time.Second)
	if el := time.Since(signalled); el > 20*time.Second {
		t.Errorf("exit %s after SIGTERM", el)
	}
	if logs := p.stderr.String(); !strings.Contains(logs, `"msg":"controlsvc stopped"`) {
		t.Errorf("no stop logged:\n%s", logs)
	}
	wantNothingHeld(t, rdb, f)
	if n := queryInt(t, dbURL, `SELECT count(*) FROM usage_records WHERE request_id = 'req_holder'`); n != 1 {
		t.Errorf("%d usage records of the holder, want 1", n)
	}
}
