// Package e2e tests poolgate end to end from real parts: a real Traefik binary with the
// plugin loaded as a local plugin, controlsvc on real PostgreSQL and Redis, and the fake
// upstream as the only stand-in. Clients talk to Traefik, as users and operators do.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

var gw *stack.Stack

// Short wait limits so that queue scenarios (queue_test.go) finish within seconds: controlsvc's
// user wait timeout and the plugin's keep-alive interval. Other limits keep their defaults.
const (
	queueUserWaitTimeout = 3 * time.Second
	queuePingInterval    = 300 * time.Millisecond
	// drainTimeout bounds the drain of a stream whose client left (drain_test.go): long
	// enough for the fake's streams to finish, short enough that a stalled one frees its
	// slots within the scenarios' 10 s.
	drainTimeout = 3 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := stack.TestOptions(root, ""); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "poolgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts, _ := stack.TestOptions(root, dir)
	opts.FakeTLS = true // gw.FakeTLSURL: the fake over TLS with HTTP/2 (TestUpstreamOverHTTP2)
	opts.ControlsvcEnv = []string{"POOLGATE_USER_WAIT_TIMEOUT=" + queueUserWaitTimeout.String()}
	opts.TraefikEnv = []string{"POOLGATE_PING_INTERVAL=" + queuePingInterval.String(),
		"POOLGATE_DRAIN_TIMEOUT=" + drainTimeout.String()}
	gw, err = stack.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the stack:", err)
		return 1
	}
	defer gw.Stop()
	code := m.Run()
	if code != 0 {
		for _, name := range []string{"traefik", "controlsvc"} {
			fmt.Fprintln(os.Stderr, gw.LogTail(name))
		}
	}
	return code
}

// --- operator side: the admin API, reached through Traefik ---

type obj = map[string]any

func admin(t testing.TB, method, path string, body any) (int, obj) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, gw.AdminURL+"/api/v1/admin"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+gw.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := obj{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: status %d, body not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

func mustAdmin(t testing.TB, method, path string, body any) obj {
	t.Helper()
	code, out := admin(t, method, path, body)
	if code < 200 || code > 299 {
		t.Fatalf("%s %s: status %d: %v", method, path, code, out)
	}
	return out
}

func id(o obj) int64 {
	f, _ := o["id"].(float64)
	return int64(f)
}

var seq atomic.Int64

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, seq.Add(1))
}

// tenant is one user with a key on a group of its own, so tests do not see each other.
type tenant struct {
	UserID, GroupID, KeyID int64
	Key                    string
	Creds                  []string // the accounts' credentials, as newTenant created them
}

type accountSpec struct {
	Credential   string
	Priority     int
	Concurrency  int
	ModelMapping map[string]string
}

func newTenant(t testing.TB, accounts ...accountSpec) (tenant, []int64) {
	t.Helper()
	u := mustAdmin(t, "POST", "/users", obj{"name": unique("user"), "concurrency": 5, "balance_usd": 10})
	g := mustAdmin(t, "POST", "/groups", obj{"name": unique("group"), "platform": "openai"})
	var ids []int64
	for _, a := range accounts {
		body := obj{
			"name": unique("acct"), "platform": "openai", "base_url": gw.FakeURL,
			"credential": obj{"api_key": a.Credential}, "priority": a.Priority,
			"concurrency": 10, "group_ids": []int64{id(g)},
		}
		if a.Concurrency > 0 {
			body["concurrency"] = a.Concurrency
		}
		if a.ModelMapping != nil {
			body["model_mapping"] = a.ModelMapping
		}
		ids = append(ids, id(mustAdmin(t, "POST", "/accounts", body)))
	}
	k := mustAdmin(t, "POST", "/api-keys", obj{"user_id": id(u), "group_id": id(g), "name": "e2e"})
	key, _ := k["key"].(string)
	if key == "" {
		t.Fatalf("api key creation returned no key: %v", k)
	}
	tn := tenant{UserID: id(u), GroupID: id(g), KeyID: id(k), Key: key}
	for _, a := range accounts {
		tn.Creds = append(tn.Creds, a.Credential)
	}
	return tn, ids
}

// usageFor waits for the usage record of the key's n-th request (reports are asynchronous).
func usageFor(t testing.TB, keyID int64, n int) []obj {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := mustAdmin(t, "GET", fmt.Sprintf("/usage?api_key_id=%d", keyID), nil)
		items, _ := out["items"].([]any)
		if len(items) >= n {
			recs := make([]obj, len(items))
			for i, it := range items {
				recs[i] = it.(obj)
			}
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d usage records for key %d, have %d: %v", n, keyID, len(items), items)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertNoSlotsHeld waits until controlsvc reports no active or waiting slot for the
// given users and accounts: every scenario must give back what it took.
func assertNoSlotsHeld(t testing.TB, userIDs, accountIDs []int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := mustAdmin(t, "GET", "/concurrency", nil)
		busy := busySlots(out, "users", "user_id", userIDs) + busySlots(out, "accounts", "account_id", accountIDs)
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still held after the scenario: %s", busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func busySlots(out obj, list, idField string, ids []int64) string {
	want := map[int64]bool{}
	for _, i := range ids {
		want[i] = true
	}
	items, _ := out[list].([]any)
	seen := map[int64]bool{}
	var busy []string
	for _, it := range items {
		o := it.(obj)
		i := int64(o[idField].(float64))
		if !want[i] {
			continue
		}
		seen[i] = true
		if o["active"].(float64) != 0 || o["waiting"].(float64) != 0 {
			busy = append(busy, fmt.Sprintf("%s %d: %v", list, i, o))
		}
	}
	for i := range want {
		if !seen[i] {
			busy = append(busy, fmt.Sprintf("%s %d missing from /concurrency", list, i))
		}
	}
	return strings.Join(busy, "; ")
}

// --- upstream side: programming the fake upstream ---

func programCredential(t testing.TB, credential string, script obj) {
	t.Helper()
	b, _ := json.Marshal(script)
	req, _ := http.NewRequest("PUT", gw.FakeURL+"/_fake/credentials/"+credential, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("programming the fake upstream for %s: %s", credential, resp.Status)
	}
}

type upstreamRequest struct {
	Path    string              `json:"path"`
	Proto   string              `json:"proto"`
	Remote  string              `json:"remote"` // the connection's client address
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
}

// upstreamRequestsFor lists the requests the fake upstream received with this credential
// as a bearer token (how the grant authenticates an OpenAI account).
func upstreamRequestsFor(t testing.TB, credential string) []upstreamRequest {
	t.Helper()
	return fakeRequestsWith(t, "Authorization", "Bearer "+credential)
}

// fakeRequestsWith lists the requests the fake upstream received whose header name had
// exactly value.
func fakeRequestsWith(t testing.TB, name, value string) []upstreamRequest {
	t.Helper()
	resp, err := http.Get(gw.FakeURL + "/_fake/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all struct {
		Items []upstreamRequest `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatalf("decoding the fake upstream's request log: %v", err)
	}
	var mine []upstreamRequest
	for _, r := range all.Items {
		if headerValue(r.Headers, name) == value {
			mine = append(mine, r)
		}
	}
	return mine
}

func headerValue(h map[string][]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// --- client side: raw HTTP for what SDKs hide ---

func post(t testing.TB, path, key string, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("POST", gw.GatewayURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

func num(o obj, field string) int64 {
	f, _ := o[field].(float64)
	return int64(f)
}
