package plugin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Fuzz targets of the client body checks (scripts/fuzz.sh runs them in make test; the seed
// corpora are in testdata/fuzz/<target>/, each a hostile shape: deep nesting, huge numbers,
// invalid UTF-8, unterminated strings, 10 000-element arrays).

// fuzzMaxInput bounds a fuzz input: the properties are about shape, not size, and a bound
// keeps each execution fast and its allocations small.
const fuzzMaxInput = 1 << 20

var fuzzPaths = []string{pathResponses, pathChat, pathMessages}

// FuzzValidateBody: validateBody never panics; an accepted body is valid JSON whose model
// is the one reported, whose stream flag is the one reported, with a bounded output
// maximum; a refused one gets a 400 with a message. The rewrite sent upstream (rewriteBody)
// of an accepted body is valid JSON with the new model, include_usage when asked, and is
// at most a small multiple of the client body (a key's invalid UTF-8 byte re-encodes as a
// six-byte \ufffd escape).
func FuzzValidateBody(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-5","input":"hi","stream":true,"max_output_tokens":100}`), uint8(0))
	f.Add([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":false}}`), uint8(1))
	f.Add([]byte(`{"model":"claude","max_tokens":1e300,"messages":[]}`), uint8(2))
	f.Add([]byte(`{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, sel uint8) {
		if len(body) > fuzzMaxInput {
			return
		}
		path := fuzzPaths[int(sel)%len(fuzzPaths)]
		orig := append([]byte(nil), body...)
		info, e := validateBody(path, body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("validateBody modified the body")
		}
		if e != nil {
			if e.status != http.StatusBadRequest || e.msg == "" || e.typ == "" {
				t.Fatalf("refusal %+v", e)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON")
		}
		var probe struct {
			Model  string          `json:"model"`
			Stream json.RawMessage `json:"stream"`
		}
		if err := json.Unmarshal(body, &probe); err != nil {
			t.Fatalf("accepted a body encoding/json cannot read: %v", err)
		}
		if probe.Model != info.model || info.model == "" {
			t.Fatalf("model %q, body says %q", info.model, probe.Model)
		}
		if info.stream != (string(probe.Stream) == "true") {
			t.Fatalf("stream %v, body says %s", info.stream, probe.Stream)
		}
		if info.forceIncludeUsage && (path != pathChat || !info.stream) {
			t.Fatalf("include_usage forced on %s stream=%v", path, info.stream)
		}
		if info.maxOutputTokens < 0 || info.maxOutputTokens > jsonsse.MaxTokenCount {
			t.Fatalf("max output tokens %d", info.maxOutputTokens)
		}

		const upstreamModel = "upstream-\u00e9-model"
		out, err := rewriteBody(body, upstreamModel, info.forceIncludeUsage, "max_output_tokens", 4096)
		if err != nil {
			t.Fatalf("rewrite of an accepted body: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("rewrite is not JSON: %q", out)
		}
		if len(out) > 6*len(body)+256 {
			t.Fatalf("rewrite of %d bytes is %d bytes", len(body), len(out))
		}
		var got struct {
			Model           string `json:"model"`
			MaxOutputTokens int64  `json:"max_output_tokens"`
			StreamOptions   struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("rewrite: %v: %q", err, out)
		}
		if got.Model != upstreamModel || got.MaxOutputTokens != 4096 {
			t.Fatalf("rewrite has model %q, max_output_tokens %d", got.Model, got.MaxOutputTokens)
		}
		if info.forceIncludeUsage && !got.StreamOptions.IncludeUsage {
			t.Fatalf("rewrite lacks include_usage: %s", out)
		}
		// The rewritten body is still a body the plugin accepts, with the new model.
		again, e := validateBody(path, out)
		if e != nil || again.model != upstreamModel || again.stream != info.stream {
			t.Fatalf("rewrite refused (%v) or changed: model %q stream %v", e, again.model, again.stream)
		}
	})
}

// FuzzErrorBodies: whatever an upstream error body holds, the type and message taken from
// it (jsonsse.ErrorFields) render into error bodies of both shapes and the code shape that are
// valid JSON and read back to exactly that type and message.
func FuzzErrorBodies(f *testing.F) {
	f.Add([]byte(`{"error":{"type":"rate_limit_error","message":"slow down"}}`))
	f.Add([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
	f.Add([]byte(`{"error":"plain \u2028 string"}`))
	f.Add([]byte("{\"error\":{\"message\":\"\xff\xfe<script>\"}}"))
	f.Add([]byte(`{"error":{"type":1,"message":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > fuzzMaxInput {
			return
		}
		typ, msg := jsonsse.ErrorFields(body, "api_error", "Upstream request failed")
		if typ == "" || msg == "" {
			t.Fatalf("empty type %q or message %q", typ, msg)
		}
		for _, anthropic := range []bool{false, true} {
			out := errorBody(anthropic, typ, msg)
			if !json.Valid(out) {
				t.Fatalf("error body is not JSON: %q", out)
			}
			gotTyp, gotMsg := jsonsse.ErrorFields(out, "", "")
			if gotTyp != typ || gotMsg != msg {
				t.Fatalf("round trip: %q/%q, want %q/%q", gotTyp, gotMsg, typ, msg)
			}
		}
		out := codeErrorBody(typ, msg)
		var back codeError
		if err := json.Unmarshal(out, &back); err != nil || back.Error.Code != typ || back.Error.Message != msg {
			t.Fatalf("code error body %q: %v", out, err)
		}
	})
}

// FuzzMergeAnthropicUsage: merging message_start's and message_delta's usage objects gives
// valid JSON in which every non-null field of the delta has the delta's value and every
// other field of the start is kept.
func FuzzMergeAnthropicUsage(f *testing.F) {
	f.Add([]byte(`{"input_tokens":10,"cache_read_input_tokens":3,"output_tokens":1}`), []byte(`{"output_tokens":99,"input_tokens":null}`))
	f.Add([]byte(`{"input_tokens":10}`), []byte(`{}`))
	f.Add([]byte(`null`), []byte(`{"output_tokens":1}`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"\ud800"}]}}`), []byte(`{"a":0,"a":1}`))
	f.Fuzz(func(t *testing.T, start, delta []byte) {
		if len(start)+len(delta) > fuzzMaxInput || !json.Valid(start) || !json.Valid(delta) {
			return // the scanner only passes usage objects encoding/json decoded
		}
		out := mergeAnthropicUsage(start, delta)
		if len(out) > 0 && !json.Valid(out) {
			t.Fatalf("merged usage is not JSON: %q", out)
		}
		var s, d, m map[string]json.RawMessage
		if json.Unmarshal(start, &s) != nil || s == nil || json.Unmarshal(delta, &d) != nil || d == nil {
			return // a non-object side: the other side is taken as it is
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("merged usage is not an object: %q", out)
		}
		for k, v := range d {
			if !jsonsse.IsNull(v) && !jsonEqual(m[k], v) {
				t.Fatalf("field %q: %s, delta has %s", k, m[k], v)
			}
		}
		for k, v := range s {
			if dv, ok := d[k]; (!ok || jsonsse.IsNull(dv)) && !jsonEqual(m[k], v) {
				t.Fatalf("field %q: %s, start has %s", k, m[k], v)
			}
		}
	})
}

// jsonEqual compares two JSON values by their compact form.
func jsonEqual(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
