package yaegi

import (
	"strconv"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// jsonsseProbe is added to a private copy of plugin/jsonsse, the helpers the core and
// plugin/convert share: it renders each helper's result as one string, so that the
// interpreted package can be compared with the compiled one.
const jsonsseProbe = `package jsonsse

import "strconv"

// JSONSSEProbe is test scaffolding written by tests/yaegi/jsonsse_test.go; not plugin code.
func JSONSSEProbe(raw string) string {
	s, sok := String([]byte(raw))
	b, bok := Bool([]byte(raw))
	typ, msg := ErrorFields([]byte(raw), "def_type", "def msg")
	name, data := EventFields([]byte(raw))
	enc, err := Encode(raw)
	if err != nil {
		return err.Error()
	}
	return strconv.Quote(s) + " " + strconv.FormatBool(sok) + " " + strconv.FormatBool(b) + " " +
		strconv.FormatBool(bok) + " " + strconv.FormatBool(IsNull([]byte(raw))) + " " + typ + " " +
		strconv.Quote(msg) + " " + strconv.Quote(string(name)) + " " + strconv.Quote(string(data)) + " " +
		string(enc)
}
`

// nativeJSONSSE is JSONSSEProbe, compiled.
func nativeJSONSSE(raw string) string {
	s, sok := jsonsse.String([]byte(raw))
	b, bok := jsonsse.Bool([]byte(raw))
	typ, msg := jsonsse.ErrorFields([]byte(raw), "def_type", "def msg")
	name, data := jsonsse.EventFields([]byte(raw))
	enc, err := jsonsse.Encode(raw)
	if err != nil {
		return err.Error()
	}
	return strconv.Quote(s) + " " + strconv.FormatBool(sok) + " " + strconv.FormatBool(b) + " " +
		strconv.FormatBool(bok) + " " + strconv.FormatBool(jsonsse.IsNull([]byte(raw))) + " " + typ + " " +
		strconv.Quote(msg) + " " + strconv.Quote(string(name)) + " " + strconv.Quote(string(data)) + " " +
		string(enc)
}

// Interpreted, plugin/jsonsse gives what it gives compiled: strings with and without
// escapes, booleans, null, both error shapes, SSE blocks with LF and CRLF lines.
func TestJSONSSEUnderYaegi(t *testing.T) {
	vs, err := interpretWithProbeIn(t.TempDir(), "plugin/jsonsse", "zz_jsonsseprobe.go", jsonsseProbe, "JSONSSEProbe")
	if err != nil {
		t.Fatal(err)
	}
	probe, ok := vs[0].Interface().(func(string) string)
	if !ok {
		t.Fatalf("probe type %s", vs[0].Type())
	}
	tests := []struct {
		name, raw string
	}{
		{"plain string", `"héllo <b>"`},
		{"escaped string", `"a\"b\u00e9\n"`},
		{"true", `true`},
		{"null", `null`},
		{"empty", ``},
		{"OpenAI error", `{"error":{"type":"rate_limit_error","message":"slow down"}}`},
		{"Anthropic error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
		{"string error", `{"error":"plain"}`},
		{"SSE event", "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"},
		{"SSE CRLF with comment", ": ping\r\nevent:  x \r\ndata: 1\r\ndata: 2\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := probe(tt.raw), nativeJSONSSE(tt.raw)
			if got != want {
				t.Errorf("interpreted %s\ncompiled    %s", got, want)
			}
			if strings.Contains(want, "\\u003c") {
				t.Errorf("Encode escaped HTML: %s", want)
			}
		})
	}
}
