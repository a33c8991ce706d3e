package convert

import (
	"encoding/json"
	"testing"
)

// The conversions' output is bounded by their input: a client cannot make the plugin build
// an upstream request, nor an upstream a client stream, many times larger than what it sent.
// The factors leave room for what a conversion legitimately adds (a declaration per tool
// used, a placeholder result per unanswered call; a Responses stream repeats each text in
// its delta, its done events and the final response).
const (
	convertRequestGrowth = 8
	convertStreamGrowth  = 32
	convertSlack         = 16 << 10
)

// FuzzConvertRequestBounded: a converted Responses request (responsesToMessages, also with
// the grant's output cap) is valid JSON, at most convertRequestGrowth times the client
// body, max_tokens never above the cap, and converting is deterministic.
func FuzzConvertRequestBounded(f *testing.F) {
	f.Add([]byte(`{"model":"m","input":[{"type":"function_call","call_id":"a","name":"f","arguments":"{}"}]}`), int64(0))
	f.Add([]byte(`{"model":"m","input":"x","max_output_tokens":1e300,"reasoning":{"effort":"high"}}`), int64(1))
	f.Add([]byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/y.png"}]}],"tools":[{"type":"function","name":"f"}]}`), int64(1<<40))
	f.Fuzz(func(t *testing.T, body []byte, limit int64) {
		if len(body) > fuzzMaxInput {
			return
		}
		req, ok := decodeFields(body)
		if !ok || len(body) == 0 || body[0] != '{' {
			return
		}
		out, err := convertRequest(&req, "claude", limit)
		if err != nil {
			if out != nil || err.Error() == "" {
				t.Fatalf("error %v with output", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("converted request is not JSON: %q", out)
		}
		if len(out) > convertRequestGrowth*len(body)+convertSlack {
			t.Fatalf("%d bytes converted to %d", len(body), len(out))
		}
		var r struct {
			MaxTokens int64 `json:"max_tokens"`
		}
		if err := json.Unmarshal(out, &r); err != nil || r.MaxTokens < 1 || limit > 0 && r.MaxTokens > limit {
			t.Fatalf("max_tokens %d with limit %d (%v)", r.MaxTokens, limit, err)
		}
		again, _ := convertRequest(&req, "claude", limit)
		if string(again) != string(out) {
			t.Fatalf("conversion is not deterministic")
		}
	})
}

// FuzzAnthropicStreamBounded: whatever an Anthropic stream holds, the Responses stream made
// of it, the final response and the usage are at most convertStreamGrowth times its size.
func FuzzAnthropicStreamBounded(f *testing.F) {
	f.Add([]byte("data:{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\"}}\n\ndata:{\"type\":\"content_block_stop\"}\n\n"), uint8(0))
	f.Add([]byte("data:{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"\xff\"}}\n\n"), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		if len(stream) > fuzzMaxInput {
			return
		}
		out, s := convertFed(stream, int(chunk))
		limit := convertStreamGrowth*len(stream) + convertSlack
		if len(out) > limit {
			t.Fatalf("%d bytes of stream converted to %d", len(stream), len(out))
		}
		if n := len(s.responseJSON()); n > limit {
			t.Fatalf("%d bytes of stream gave a response of %d", len(stream), n)
		}
		if u := s.anthropicUsage(); len(u) > len(stream)+convertSlack {
			t.Fatalf("%d bytes of stream gave usage of %d", len(stream), len(u))
		}
	})
}
