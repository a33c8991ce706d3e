package yaegi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// anthropicSummaryStream answers a summarisation request with a text summary.
const anthropicSummaryStream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"The user wants a.txt.\"}}\n\n" +
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":6}}\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

// Interpreted, with the real controlsvc: /v1/responses/compact on an anthropic group is a
// converted summarisation answered in Codex's compact shape and billed; a Responses request
// with a tool Claude lacks stores the warning on its record.
func TestCompactAndWarningsThroughPlugin(t *testing.T) {
	s := getStack(t)
	tn := s.seedOn(t, "anthropic",
		accountSpec{name: "summariser", priority: 1, script: &fakeupstream.Script{Body: fakeupstream.RawBody(anthropicSummaryStream)}})
	acct := tn.accounts[0]

	compact := `{"model":"claude-sonnet-4-5","instructions":"You are Codex.","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"add a.txt"}]},` +
		`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok"}]}]}`
	rec := serve(t, s.handler, "/v1/responses/compact", bearer(tn.key), compact)
	var got struct {
		Output []struct {
			Role    string `json:"role"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || len(got.Output) != 2 ||
		got.Output[0].Content[0].Text != "add a.txt" || !strings.HasSuffix(got.Output[1].Content[0].Text, "The user wants a.txt.") {
		t.Fatalf("compact: %d %s", rec.Code, rec.Body)
	}
	reqs := s.upstreamRequests(acct.cred)
	if len(reqs) != 1 || reqs[0].Path != "/v1/messages" || !strings.Contains(reqs[0].Body, "Compact this conversation") {
		t.Fatalf("upstream requests %+v", reqs)
	}

	rec = serve(t, s.handler, "/v1/responses", bearer(tn.key),
		`{"model":"claude-sonnet-4-5","input":"hi","tools":[{"type":"custom","name":"apply_patch"},{"type":"code_interpreter"}]}`)
	if rec.Code != 200 {
		t.Fatalf("responses: %d %s", rec.Code, rec.Body)
	}
	rows := s.waitUsage(t, tn.keyID, 2)
	paths := map[string]usageRow{}
	for _, r := range rows {
		paths[r.Path] = r
	}
	c, r := paths["/v1/responses/compact"], paths["/v1/responses"]
	if c.Status != 200 || c.InputTokens != 40 || c.OutputTokens != 6 || len(c.Warnings) != 0 {
		t.Errorf("compact record %+v", c)
	}
	if r.Status != 200 || len(r.Warnings) != 1 || r.Warnings[0] != `tools[1]: tool type "code_interpreter" has no Claude equivalent; left out` {
		t.Errorf("responses record %+v", r)
	}
	s.waitIdle(t, tn)
}
