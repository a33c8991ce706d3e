package clis

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tool scenario every run plays: the first model request is answered with a call of
// the CLI's shell tool writing a marker file, the request carrying the tool's result with
// a text. The two answers report different usage so that the records show which is which.
var (
	toolUsage  = obj{"input_tokens": 1200, "output_tokens": 40}
	finalUsage = obj{"input_tokens": 1300, "output_tokens": 9}
)

const finalText = "The marker file is written."

func toolScript(tool string, input obj) obj {
	return obj{"tool_call": obj{"name": tool, "input": input}, "usage": toolUsage,
		"after_tool_result": obj{"text": finalText, "usage": finalUsage}}
}

// markerCommand writes marker into marker.txt in the CLI's working directory and prints it.
func markerCommand(marker string) string {
	return fmt.Sprintf("printf %s > marker.txt && cat marker.txt", marker)
}

type upstreamRequest struct {
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
}

// fakeRequests lists what the fake upstream received with one of creds (as Bearer token
// or x-api-key), oldest first.
func fakeRequests(t *testing.T, creds []string) []upstreamRequest {
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
		if credOf(r, creds) != "" {
			mine = append(mine, r)
		}
	}
	return mine
}

func credOf(r upstreamRequest, creds []string) string {
	for k, v := range r.Headers {
		if len(v) == 0 {
			continue
		}
		for _, c := range creds {
			if (strings.EqualFold(k, "x-api-key") && v[0] == c) || (strings.EqualFold(k, "Authorization") && v[0] == "Bearer "+c) {
				return c
			}
		}
	}
	return ""
}

func isCountTokens(path string) bool { return strings.HasSuffix(path, "/count_tokens") }

// isModelCall is a generation request: what is billed.
func isModelCall(path string) bool {
	return !isCountTokens(path) && (strings.HasSuffix(path, "/responses") || strings.HasSuffix(path, "/messages") ||
		strings.HasSuffix(path, "/chat/completions") || strings.HasSuffix(path, "/responses/compact"))
}

// expectRun is what one tool-scenario run must show.
type expectRun struct {
	tn     tenant
	rec    *recorder
	sb     sandbox
	marker string
	run    cliRun
	// resumed is a second run continuing the conversation (resumedRan: it was started,
	// after a first run that succeeded); its model call answers with the final text again,
	// the request carrying the earlier tool result.
	resumed    cliRun
	resumedRan bool
	// upstreamPath is the path the fake must see the model calls on (/v1/responses on an
	// openai group, /v1/messages on an anthropic one).
	upstreamPath string
}

func checkToolRun(t *testing.T, e expectRun) {
	t.Helper()
	t.Logf("the CLI's run:\n%s", e.run)
	if e.run.Err != nil {
		t.Errorf("the CLI failed: %v", e.run.Err)
	}
	if !strings.Contains(e.run.Stdout, finalText) {
		t.Errorf("the CLI's output lacks the final answer %q", finalText)
	}
	if e.resumedRan {
		t.Logf("the resumed run:\n%s", e.resumed)
		if e.resumed.Err != nil || !strings.Contains(e.resumed.Stdout, finalText) {
			t.Errorf("the resumed run failed (%v) or lacks the answer %q", e.resumed.Err, finalText)
		}
	}
	// The tool ran.
	if b, err := os.ReadFile(filepath.Join(e.sb.Work, "marker.txt")); err != nil || string(b) != e.marker {
		t.Errorf("marker.txt = %q (%v), want %q: the tool did not run", b, err, e.marker)
	}
	// No request of the CLI got a 404 or a 5xx; every model call was answered.
	var calls, counts int
	for _, s := range e.rec.requests() {
		if s.Status == http.StatusNotFound || s.Status >= 500 {
			t.Errorf("the gateway answered %s", s)
		}
		switch {
		case isCountTokens(s.Path):
			counts++
		case isModelCall(s.Path):
			calls++
			if s.Status != http.StatusOK {
				t.Errorf("model call %s, want 200", s)
			}
		}
	}
	t.Logf("the CLI sent: %v", e.rec.requests())
	// Upstream: the tool call, then a request carrying its result, all on one account.
	var model []upstreamRequest
	for _, r := range fakeRequests(t, e.tn.Creds) {
		if isModelCall(r.Path) {
			model = append(model, r)
		}
	}
	if len(model) < 2 {
		t.Fatalf("the fake upstream saw %d model requests, want the tool call and the one with its result", len(model))
	}
	accounts := map[string]int{}
	for i, r := range model {
		accounts[credOf(r, e.tn.Creds)]++
		if r.Path != e.upstreamPath {
			t.Errorf("upstream request %d went to %s, want %s", i, r.Path, e.upstreamPath)
		}
	}
	if len(accounts) != 1 {
		t.Errorf("the turns were served by %d accounts of the pool (%v), want one", len(accounts), accounts)
	}
	if out := toolOutputs(t, model[0].Body); len(out) != 0 {
		t.Errorf("the first upstream request already carries tool output: %q", out)
	}
	if out := toolOutputs(t, model[len(model)-1].Body); !containsMarker(out, e.marker) {
		t.Errorf("the last upstream request's tool results %q lack the tool's output %q", out, e.marker)
	}
	checkRecords(t, e.tn, calls, counts)
	assertNoSlotsHeld(t, []int64{e.tn.UserID}, e.tn.AccountIDs)
}

// checkRecords: one usage record per model call and none for count_tokens, all on one
// account, with the fake's tokens (the tool call's, then the final answer's), and the
// user's balance down by exactly what they cost.
func checkRecords(t *testing.T, tn tenant, calls, counts int) {
	t.Helper()
	recs := usageRecords(t, tn.KeyID, calls)
	if len(recs) != calls {
		t.Errorf("%d usage records for %d model calls and %d count_tokens calls, want one per model call: %v", len(recs), calls, counts, recs)
	}
	var cost float64
	acct := num(recs[0], "account_id")
	for i, r := range recs {
		if isCountTokens(fmt.Sprint(r["path"])) {
			t.Errorf("record %d bills a count_tokens call: %v", i, r)
		}
		if num(r, "account_id") != acct {
			t.Errorf("record %d on account %d, record 0 on %d: the turns left their account", i, num(r, "account_id"), acct)
		}
		want := finalUsage
		if i == 0 {
			want = toolUsage
		}
		if num(r, "status") != 200 || num(r, "input_tokens") != num(want, "input_tokens") || num(r, "output_tokens") != num(want, "output_tokens") {
			t.Errorf("record %d: status %v, tokens %v in / %v out, want 200 with the fake's %v", i, r["status"], r["input_tokens"], r["output_tokens"], want)
		}
		c, _ := r["cost_usd"].(json.Number).Float64()
		cost += c
	}
	u := mustAdmin(t, "GET", fmt.Sprintf("/users/%d", tn.UserID), nil)
	if spent := tn.BalanceUSD - usdOf(u["balance_usd"]); math.Abs(spent-cost) > 1e-6 {
		t.Errorf("the balance went down by %.6f, the records cost %.6f", spent, cost)
	}
}

// toolOutputs are the tool results an upstream request carries, as text: Responses
// function_call_output / custom_tool_call_output items, Messages tool_result blocks.
func toolOutputs(t *testing.T, body string) []string {
	t.Helper()
	var req struct {
		Input    []json.RawMessage `json:"input"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatalf("upstream body is not JSON: %v", err)
	}
	var out []string
	for _, raw := range req.Input {
		var it struct {
			Type   string          `json:"type"`
			Output json.RawMessage `json:"output"`
		}
		if json.Unmarshal(raw, &it) == nil && strings.HasSuffix(it.Type, "call_output") {
			out = append(out, string(it.Output))
		}
	}
	for _, m := range req.Messages {
		var blocks []struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue
		}
		for _, b := range blocks {
			if b.Type == "tool_result" {
				out = append(out, string(b.Content))
			}
		}
	}
	return out
}

func containsMarker(outputs []string, marker string) bool {
	for _, o := range outputs {
		if strings.Contains(o, marker) {
			return true
		}
	}
	return false
}
