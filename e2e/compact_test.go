package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// compactBody is a small Codex remote-compaction request (POST /responses/compact).
const compactBody = `{"model":"%s","instructions":"You are Codex.","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"fix the bug"}]},` +
	`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"done"}]},{"type":"message","role":"user","content":[{"type":"input_text","text":"thanks"}]}]}`

// compactOutput decodes a compaction answer's output messages.
func compactOutput(t *testing.T, body string) []struct {
	Role    string `json:"role"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
} {
	t.Helper()
	var got struct {
		Object string `json:"object"`
		Output []struct {
			Role    string `json:"role"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Output) == 0 {
		t.Fatalf("compaction answer %s (%v)", body, err)
	}
	return got.Output
}

// Codex's remote compaction (docs/design.md, "Paths"), through Traefik and without the /v1
// prefix: on an openai group passed through to the account's /v1/responses/compact and
// billed like a Responses call; on an anthropic group answered by a converted summarisation
// request in the compaction shape, billed from Claude's usage.
func TestResponsesCompact(t *testing.T) {
	t.Run("openai group: passed through, billed", func(t *testing.T) {
		cred := unique("sk-compact")
		programCredential(t, cred, obj{"usage": obj{"input_tokens": 300, "output_tokens": 40}})
		tn, accts := newTenant(t, accountSpec{Credential: cred})
		code, _, body := post(t, "/responses/compact", tn.Key, strings.Replace(compactBody, "%s", "gpt-4o-mini", 1), nil)
		if code != 200 {
			t.Fatalf("compact: %d %s", code, body)
		}
		out := compactOutput(t, body)
		if out[0].Content[0].Text != fakeupstream.CompactSummary {
			t.Errorf("output %+v, want the upstream's compaction", out)
		}
		reqs := upstreamRequestsFor(t, cred)
		if len(reqs) != 1 || reqs[0].Path != "/v1/responses/compact" {
			t.Fatalf("upstream requests %+v, want one POST /v1/responses/compact", reqs)
		}
		rec := usageFor(t, tn.KeyID, 1)[0]
		if rec["path"] != "/v1/responses/compact" || num(rec, "input_tokens") != 300 || num(rec, "output_tokens") != 40 ||
			rec["cost_usd"] == 0.0 {
			t.Errorf("record %v, want path /v1/responses/compact billed for 300 in / 40 out", rec)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})
	t.Run("anthropic group: a converted summary", func(t *testing.T) {
		cred := unique("sk-compact-ant")
		programCredential(t, cred, obj{"text": "The user asked to fix a bug; it was fixed.",
			"usage": obj{"input_tokens": 500, "output_tokens": 30}})
		tn, accts := anthropicTenant(t, nil, accountSpec{Credential: cred})
		code, _, body := post(t, "/v1/responses/compact", tn.Key, strings.Replace(compactBody, "%s", "claude-sonnet-4-5", 1), nil)
		if code != 200 {
			t.Fatalf("compact: %d %s", code, body)
		}
		out := compactOutput(t, body)
		last := out[len(out)-1]
		if last.Role != "user" || last.Content[0].Type != "input_text" ||
			!strings.Contains(last.Content[0].Text, "The user asked to fix a bug; it was fixed.") {
			t.Errorf("output %+v, want the user turns and a last user message with Claude's summary", out)
		}
		reqs := anthropicRequestsFor(t, cred)
		if len(reqs) != 1 || reqs[0].Path != "/v1/messages" {
			t.Fatalf("upstream requests %+v, want one converted POST /v1/messages", reqs)
		}
		rec := usageFor(t, tn.KeyID, 1)[0]
		if rec["path"] != "/v1/responses/compact" || num(rec, "input_tokens") != 500 || num(rec, "output_tokens") != 30 {
			t.Errorf("record %v, want path /v1/responses/compact billed for 500 in / 30 out", rec)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})
}
