// Package stall is the stuck-client test of the plugin's stall watchdog through the real
// Traefik: clients that open a large stream and never read it must lose their slots within
// writeStallTimeout + the lease TTL, although their connections stay open. Inside Traefik the
// plugin cannot interrupt the blocked write, so only the watchdog's "stop renewing the lease"
// frees the slots. It runs on a stack of its own: it needs a short write stall timeout and a
// lease TTL just above the plugin's 15 s renew interval (so that a renewed lease and an
// unrenewed one differ within the test's time).
package stall

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

const (
	stuckClients = 10
	stallTimeout = 2 * time.Second
	leaseTTL     = 20 * time.Second
	slack        = 8 * time.Second
	credential   = "sk-stall-upstream"
)

type obj = map[string]any

func TestStuckClientsLoseTheirSlots(t *testing.T) {
	s := startStack(t)
	a := admin{t: t, s: s}
	// 12 MB of text in 4 KB words: a stream far larger than the socket buffers.
	a.programUpstream(obj{"text": strings.Repeat(strings.Repeat("x", 4000)+" ", 3000)})
	user := a.must("POST", "/users", obj{"name": "stall-user", "concurrency": 50, "balance_usd": 100})
	group := a.must("POST", "/groups", obj{"name": "stall-group", "platform": "openai"})
	account := a.must("POST", "/accounts", obj{"name": "stall-account", "platform": "openai",
		"base_url": s.FakeURL, "credential": obj{"api_key": credential}, "concurrency": 50,
		"group_ids": []int64{id(group)}})
	key := a.must("POST", "/api-keys", obj{"user_id": id(user), "group_id": id(group), "name": "stall"})["key"].(string)

	for i := 0; i < stuckClients; i++ {
		openStuckStream(t, s.GatewayURL, key)
	}
	began := time.Now()
	// Every stuck request got its slots (the streams are running), then loses them.
	waitActive(t, a, id(user), id(account), func(n int64) bool { return n == stuckClients }, 10*time.Second, "all stuck requests admitted")
	waitActive(t, a, id(user), id(account), func(n int64) bool { return n == 0 }, stallTimeout+leaseTTL+slack, "slots back to 0")
	t.Logf("slots of %d stuck clients free %v after they stopped reading", stuckClients, time.Since(began).Round(time.Second))

	// Other clients are served meanwhile, by the same user even.
	req, _ := http.NewRequest(http.MethodPost, s.GatewayURL+"/v1/responses", strings.NewReader(`{"model":"gpt-4o-mini","input":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	a.programUpstream(obj{"text": "short"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "short") {
		t.Fatalf("a reading client got %d %s", resp.StatusCode, body)
	}
}

// openStuckStream sends a streaming request on a raw connection with a tiny receive buffer
// and never reads the answer; the connection stays open until the test ends.
func openStuckStream(t *testing.T, gatewayURL, key string) {
	t.Helper()
	raddr, err := net.ResolveTCPAddr("tcp", strings.TrimPrefix(gatewayURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTCP("tcp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadBuffer(1024)
	body := `{"model":"gpt-4o-mini","input":"hi","stream":true}`
	fmt.Fprintf(conn, "POST /v1/responses HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body)
}

// waitActive polls /concurrency until the user's and the account's active slots satisfy ok.
func waitActive(t *testing.T, a admin, userID, accountID int64, ok func(int64) bool, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		u, acc := a.active(userID, accountID)
		if ok(u) && ok(acc) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (user active %d, account active %d)", what, within, u, acc)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type admin struct {
	t *testing.T
	s *stack.Stack
}

func (a admin) must(method, path string, body any) obj {
	a.t.Helper()
	b, _ := json.Marshal(body)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.s.GatewayURL+"/api/v1/admin"+path, rd)
	req.Header.Set("Authorization", "Bearer "+a.s.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := obj{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil || resp.StatusCode/100 != 2 {
		a.t.Fatalf("%s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	return out
}

func (a admin) programUpstream(script obj) {
	a.t.Helper()
	b, _ := json.Marshal(script)
	req, _ := http.NewRequest(http.MethodPut, a.s.FakeURL+"/_fake/credentials/"+credential, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		a.t.Fatalf("programming the fake upstream: %s", resp.Status)
	}
}

// active reads the active slots of the user and the account from /concurrency.
func (a admin) active(userID, accountID int64) (int64, int64) {
	out := a.must("GET", "/concurrency", nil)
	find := func(list, field string, want int64) int64 {
		items, _ := out[list].([]any)
		for _, it := range items {
			o, _ := it.(obj)
			if num(o[field]) == want {
				return num(o["active"])
			}
		}
		return 0
	}
	return find("users", "user_id", userID), find("accounts", "account_id", accountID)
}

func id(o obj) int64 { return num(o["id"]) }

func num(v any) int64 {
	n, _ := v.(json.Number)
	i, _ := strconv.ParseInt(string(n), 10, 64)
	return i
}

func startStack(t *testing.T) *stack.Stack {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("POOLGATE_BIN_DIR")
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	for _, b := range []string{"traefik", "controlsvc", "fakeupstream"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s missing in %s: run `make build traefik` (or `make test`)", b, bin)
		}
	}
	dir, err := os.MkdirTemp("", "poolgate-stall-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{
		Dir:             dir,
		RepoRoot:        root,
		TraefikBin:      filepath.Join(bin, "traefik"),
		ControlsvcBin:   filepath.Join(bin, "controlsvc"),
		FakeupstreamBin: filepath.Join(bin, "fakeupstream"),
		ControlsvcEnv:   []string{"POOLGATE_LEASE_TTL=" + leaseTTL.String()},
		TraefikEnv:      []string{"POOLGATE_WRITE_STALL_TIMEOUT=" + stallTimeout.String()},
	})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting the stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"traefik", "controlsvc"} {
				t.Log(s.LogTail(name))
			}
		}
		s.Stop()
		os.RemoveAll(dir)
	})
	return s
}
