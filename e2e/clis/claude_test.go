package clis

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// claudePrint runs `claude -p` once in a fresh sandbox through a recorder in front of the
// gateway. --allowedTools Bash lets the print mode run the shell tool without asking.
func claudePrint(t *testing.T, tn tenant) expectRun {
	t.Helper()
	bin := binary(t, "CLAUDE_CODE_PACKAGE", "CLAUDE_CODE_VERSION", "claude")
	sb := newSandbox(t)
	rec := newRecorder(t)
	env := claudeSetup(t, sb, rec.URL, tn.Key)
	run := runCLI(t, sb.Work, env, bin, "-p", "--allowedTools", "Bash", "--",
		"Write the marker file with your Bash tool, then say that it is written.")
	e := expectRun{tn: tn, rec: rec, sb: sb, run: run, upstreamPath: "/v1/messages"}
	if run.Err == nil && strings.Contains(run.Stdout, finalText) {
		// The same conversation continued by a new process: its turn must stay on the account.
		e.resumed = runCLI(t, sb.Work, env, bin, "-p", "--continue", "--allowedTools", "Bash", "--",
			"Is the marker file still there?")
		e.resumedRan = true
	}
	return e
}

// TestClaudeCodeAnthropicGroup: Claude Code on an anthropic group, /v1/messages passed
// through, its Bash tool called once.
func TestClaudeCodeAnthropicGroup(t *testing.T) {
	marker := unique("claude-marker")
	script := toolScript("Bash", obj{"command": markerCommand(marker), "description": "Write the marker file"})
	tn := newTenant(t, "anthropic", 10, nil, 2, script)
	e := claudePrint(t, tn)
	e.marker = marker
	checkToolRun(t, e)
}

// TestClaudeCodeLowBalance: a user whose balance cannot cover the input of Claude Code's
// first request is refused before any upstream call with 402 billing_error, and Claude Code
// prints the gateway's billing message.
func TestClaudeCodeLowBalance(t *testing.T) {
	tn := newTenant(t, "anthropic", 0.01, nil, 2, obj{"text": "must not be reached"})
	e := claudePrint(t, tn)
	out := e.run.Stdout + e.run.Stderr
	if !strings.Contains(out, "Insufficient balance") {
		t.Errorf("Claude Code does not print the billing message \"Insufficient balance\":\n%s", e.run)
	}
	if strings.Contains(out, "authenticate") {
		t.Errorf("Claude Code takes the refusal for an authentication failure:\n%s", e.run)
	}
	refused := false
	for _, s := range e.rec.requests() {
		if isModelCall(s.Path) {
			if s.Status != 402 || !strings.Contains(s.ErrorBody, `"billing_error"`) {
				t.Errorf("model call %s, want 402 billing_error", s)
			} else {
				refused = true
			}
		}
		if s.Status == 404 || s.Status >= 500 {
			t.Errorf("the gateway answered %s", s)
		}
	}
	if !refused {
		t.Errorf("no model call was refused; the CLI sent %v", e.rec.requests())
	}
	for _, r := range fakeRequests(t, tn.Creds) {
		if isModelCall(r.Path) {
			t.Errorf("a refused user's request reached the upstream: %s", r.Path)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, tn.AccountIDs)
}

// TestClaudeCodeContextCountTokens: Claude Code's /context counts the conversation's
// parts with POST /v1/messages/count_tokens (two dozen calls): each is answered (never a
// 404, which makes Claude Code fall back to billed generation requests), none is billed,
// and no generation request is made.
func TestClaudeCodeContextCountTokens(t *testing.T) {
	tn := newTenant(t, "anthropic", 10, nil, 2, obj{"text": "must not be reached"})
	bin := binary(t, "CLAUDE_CODE_PACKAGE", "CLAUDE_CODE_VERSION", "claude")
	sb := newSandbox(t)
	rec := newRecorder(t)
	run := runCLI(t, sb.Work, claudeSetup(t, sb, rec.URL, tn.Key), bin, "-p", "--", "/context")
	t.Logf("the CLI's run:\n%s", run)
	if run.Err != nil {
		t.Errorf("claude -p /context failed: %v", run.Err)
	}
	counts, failed := 0, []seen{}
	for _, s := range rec.requests() {
		switch {
		case isCountTokens(s.Path):
			counts++
			if s.Status != 200 {
				failed = append(failed, s)
			}
		case isModelCall(s.Path):
			t.Errorf("/context made a generation request %s", s)
		default:
			if s.Status == 404 || s.Status >= 500 {
				t.Errorf("the gateway answered %s", s)
			}
		}
	}
	if counts == 0 {
		t.Fatalf("claude -p /context made no count_tokens call; it sent %v", rec.requests())
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d count_tokens calls not answered 200, the first: %s", len(failed), counts, failed[0])
	}
	for _, r := range fakeRequests(t, tn.Creds) {
		if isModelCall(r.Path) {
			t.Errorf("a generation request reached the upstream: %s", r.Path)
		}
	}
	// Unbilled: no usage record, the balance untouched (a record would have come within
	// the wait of the other runs' records).
	time.Sleep(time.Second)
	if _, out := admin(t, "GET", fmt.Sprintf("/usage?api_key_id=%d", tn.KeyID), nil); len(out["items"].([]any)) != 0 {
		t.Errorf("count_tokens calls left usage records: %v", out["items"])
	}
	u := mustAdmin(t, "GET", fmt.Sprintf("/users/%d", tn.UserID), nil)
	if b := usdOf(u["balance_usd"]); b != tn.BalanceUSD {
		t.Errorf("balance %v after %d count_tokens calls, want %v", b, counts, tn.BalanceUSD)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, tn.AccountIDs)
}
