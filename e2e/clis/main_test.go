// Package clis runs the real coding-agent CLIs, Codex CLI (`codex exec`) and Claude Code
// (`claude -p`), at the versions pinned in scripts/clis.env, through the real Traefik with
// the plugin, controlsvc on PostgreSQL and Redis, and the fake upstream scripted to ask
// for one tool call and then answer. scripts/ensure-clis.sh (make test)
// installs the CLIs; docs/clients.md shows the configuration these tests write.
package clis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

var (
	gw       *stack.Stack
	repoRoot string
	pinned   pins // scripts/clis.env
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs("../.."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if pinned, err = readPins(repoRoot); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/clis:", err)
		return 1
	}
	if _, err := stack.TestOptions(repoRoot, ""); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/clis:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "poolgate-clis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts, _ := stack.TestOptions(repoRoot, dir)
	if gw, err = stack.Start(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/clis: starting the stack:", err)
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

type obj = map[string]any

// admin calls the admin API through Traefik's admin entrypoint.
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

// tenant is one user with a key on a group of its own and a pool of accounts on the fake
// upstream, all scripted alike: whichever account a turn lands on answers the same.
type tenant struct {
	UserID, KeyID int64
	Key           string
	Platform      string
	BalanceUSD    float64
	Creds         []string
	AccountIDs    []int64
}

// newTenant sets up a user with balanceUSD on a group of platform with group's extra
// fields (e.g. model_mapping) and accounts equal-priority accounts whose credentials the
// fake answers with script.
func newTenant(t *testing.T, platform string, balanceUSD float64, group obj, accounts int, script obj) tenant {
	t.Helper()
	u := mustAdmin(t, "POST", "/users", obj{"name": unique("user"), "concurrency": 5, "balance_usd": balanceUSD})
	gb := obj{"name": unique("group"), "platform": platform}
	for k, v := range group {
		gb[k] = v
	}
	g := mustAdmin(t, "POST", "/groups", gb)
	tn := tenant{UserID: id(u), Platform: platform, BalanceUSD: balanceUSD}
	for i := 0; i < accounts; i++ {
		cred := unique("sk-cli")
		programCredential(t, cred, script)
		a := mustAdmin(t, "POST", "/accounts", obj{
			"name": unique("acct"), "platform": platform, "base_url": gw.FakeURL,
			"credential": obj{"api_key": cred}, "concurrency": 10, "group_ids": []int64{id(g)},
		})
		tn.Creds = append(tn.Creds, cred)
		tn.AccountIDs = append(tn.AccountIDs, id(a))
	}
	k := mustAdmin(t, "POST", "/api-keys", obj{"user_id": id(u), "group_id": id(g), "name": "e2e-clis"})
	tn.KeyID = id(k)
	tn.Key, _ = k["key"].(string)
	if tn.Key == "" {
		t.Fatalf("api key creation returned no key: %v", k)
	}
	return tn
}

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
