package clis

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// codexExec runs `codex exec` once in a fresh sandbox through a recorder in front of the
// gateway and returns what the run must show. Full access: the tool writes into the
// sandbox's workspace, and Codex's own sandbox needs namespaces CI machines may lack.
func codexExec(t *testing.T, tn tenant, upstreamPath string) expectRun {
	t.Helper()
	bin := binary(t, "CODEX_PACKAGE", "CODEX_VERSION", "codex")
	sb := newSandbox(t)
	rec := newRecorder(t)
	env := codexSetup(t, sb, rec.URL, tn.Key)
	run := runCLI(t, sb.Work, env, bin, "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access",
		"Write the marker file with your shell tool, then say that it is written.")
	e := expectRun{tn: tn, rec: rec, sb: sb, run: run, upstreamPath: upstreamPath}
	if run.Err == nil && strings.Contains(run.Stdout, finalText) {
		// The same conversation continued by a new process: its turn must stay on the account.
		e.resumed = runCLI(t, sb.Work, env, bin, "exec", "resume", "--last", "--skip-git-repo-check",
			"-c", `sandbox_mode="danger-full-access"`, "Is the marker file still there?")
		e.resumedRan = true
	}
	return e
}

// Codex's default model gets its tools in "code mode": one custom (freeform) tool exec in
// the namespace functions, whose input is JavaScript that calls the other tools
// (tools.exec_command for the shell). codexJS is what a model sends it.
func codexJS(marker string) string {
	return fmt.Sprintf("const r = await tools.exec_command({cmd: %q});\ntext(r.output);", markerCommand(marker))
}

// codexOpenAIScript answers as OpenAI does: a custom_tool_call of functions/exec.
func codexOpenAIScript(marker string) obj {
	s := toolScript("exec", nil)
	s["tool_call"] = obj{"name": "exec", "namespace": "functions", "custom": true, "input": codexJS(marker)}
	return s
}

// codexClaudeScript answers as Claude does when the conversion gave it Codex's tools:
// a tool_use of the flat functions__exec with the raw input as its one string.
func codexClaudeScript(marker string) obj {
	return toolScript("functions__exec", obj{"input": codexJS(marker)})
}

// TestCodexExecOpenAIGroup: Codex on an openai group, /v1/responses passed through.
func TestCodexExecOpenAIGroup(t *testing.T) {
	marker := unique("codex-openai-marker")
	tn := newTenant(t, "openai", 10, nil, 2, codexOpenAIScript(marker))
	e := codexExec(t, tn, "/v1/responses")
	e.marker = marker
	checkToolRun(t, e)
}

// TestCodexExecAnthropicGroup: Codex on an anthropic group whose mapping sends Codex's
// default model to Claude Code's: Responses converted to Messages and back, Codex's
// namespaced custom tool included (functions__exec back as the custom_tool_call exec of
// the namespace functions).
func TestCodexExecAnthropicGroup(t *testing.T) {
	marker := unique("codex-anthropic-marker")
	group := obj{"model_mapping": obj{pinned["CODEX_DEFAULT_MODEL"]: pinned["CLAUDE_CODE_DEFAULT_MODEL"]}}
	tn := newTenant(t, "anthropic", 10, group, 2, codexClaudeScript(marker))
	e := codexExec(t, tn, "/v1/messages")
	e.marker = marker
	checkToolRun(t, e)
	checkToolsConverted(t, e)
}

// codexTools are the tools a Codex request declares, under the names a conversion to
// Messages gives them (contract: a namespace's tools flattened to namespace__name), by
// Responses type: from its tools and from its additional_tools input items.
func codexTools(t *testing.T, body string) map[string]string {
	t.Helper()
	type tool struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Tools []tool `json:"tools"`
	}
	var req struct {
		Tools []tool `json:"tools"`
		Input []struct {
			Type  string `json:"type"`
			Tools []tool `json:"tools"`
		} `json:"input"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatalf("Codex's request is not JSON: %v", err)
	}
	out := map[string]string{}
	var add func(prefix string, ts []tool)
	add = func(prefix string, ts []tool) {
		for _, tl := range ts {
			if tl.Type == "namespace" {
				add(prefix+tl.Name+"__", tl.Tools)
				continue
			}
			name := tl.Name
			if name == "" {
				name = tl.Type // web_search and the like have none
			}
			out[prefix+name] = tl.Type
		}
	}
	add("", req.Tools)
	for _, it := range req.Input {
		if it.Type == "additional_tools" {
			add("", it.Tools)
		}
	}
	return out
}

// checkToolsConverted: every function and custom tool Codex declared reaches Claude as a
// tool of that name, web_search as Anthropic's server web-search tool, and the request
// carries prompt-cache breakpoints (at most four).
func checkToolsConverted(t *testing.T, e expectRun) {
	t.Helper()
	var codexBody string
	for _, s := range e.rec.requests() {
		if isModelCall(s.Path) && s.Body != "" {
			codexBody = s.Body
			break
		}
	}
	model := fakeRequests(t, e.tn.Creds)
	if codexBody == "" || len(model) == 0 {
		t.Fatalf("no Codex request and its upstream request to compare")
	}
	var up struct {
		Tools []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal([]byte(model[0].Body), &up); err != nil {
		t.Fatalf("upstream body: %v", err)
	}
	upNames, webSearch := map[string]bool{}, false
	for _, tl := range up.Tools {
		upNames[tl.Name] = true
		webSearch = webSearch || strings.HasPrefix(tl.Type, "web_search")
	}
	declared := codexTools(t, codexBody)
	var missing []string
	for name, typ := range declared {
		switch typ {
		case "function", "custom":
			if !upNames[name] {
				missing = append(missing, typ+" "+name)
			}
		case "web_search":
			if !webSearch {
				missing = append(missing, "web_search")
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("Codex declared %d tools, Claude got %d; missing: %v", len(declared), len(up.Tools), missing)
	}
	if n := strings.Count(model[0].Body, `"cache_control"`); n < 1 || n > 4 {
		t.Errorf("the converted request carries %d cache_control breakpoints, want 1 to 4", n)
	}
}

// TestCodexExecLowBalance: a user whose balance cannot cover Codex's first request is
// refused before any upstream call with OpenAI's 403 insufficient_quota, and Codex shows
// the gateway's billing message, "Insufficient balance: …" (the pinned Codex prints the
// message of a 403 it does not retry) — never an authentication or server error.
func TestCodexExecLowBalance(t *testing.T) {
	tn := newTenant(t, "openai", 0.01, nil, 2, obj{"text": "must not be reached"})
	e := codexExec(t, tn, "/v1/responses")
	t.Logf("the CLI's run:\n%s", e.run)
	out := e.run.Stdout + e.run.Stderr
	if !strings.Contains(out, "Insufficient balance: $0.01 available") {
		t.Errorf("Codex prints no billing message (\"Insufficient balance: $0.01 available; …\")")
	}
	refused := 0
	for _, s := range e.rec.requests() {
		if s.Status == 404 || s.Status >= 500 {
			t.Errorf("the gateway answered %s", s)
		}
		if isModelCall(s.Path) {
			// The gateway's refusal, as OpenAI words it: 403 insufficient_quota with the
			// amounts.
			if s.Status != 403 || !strings.Contains(s.ErrorBody, `"code":"insufficient_quota"`) ||
				!strings.Contains(s.ErrorBody, "Insufficient balance") {
				t.Errorf("model call %s, want 403 insufficient_quota \"Insufficient balance: …\"", s)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("Codex sent no model call: %v", e.rec.requests())
	}
	for _, r := range fakeRequests(t, tn.Creds) {
		if isModelCall(r.Path) {
			t.Errorf("a refused user's request reached the upstream: %s", r.Path)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, tn.AccountIDs)
}
