package plugin

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// FuzzUsageScannerReads (with FuzzUsageScannerSplit, usage_hostile_test.go): fed in reads
// of any size, down to one byte, the scanner finds what it finds in one read; what it
// returns is valid JSON, a JSON reply's usage an object of at most maxUsageObject bytes
// (a stream's Anthropic usage merges two of them), complete only with a result, and the
// line it carries never passes jsonsse.MaxCarry.
func FuzzUsageScannerReads(f *testing.F) {
	f.Add([]byte(`{"id":"x","usage":{"input_tokens":1,"output_tokens":2}}`), uint8(0), false)
	f.Add([]byte("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":null,\"input_tokens\":2}}"), uint8(2), true)
	f.Add([]byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\r\n\r\n"), uint8(4), true)
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8, sse bool) {
		if len(body) > fuzzMaxInput {
			return
		}
		n := int(chunk) + 1
		for _, format := range []string{usageResponses, usageChat, usageAnthropic} {
			whole := newUsageScanner(format, sse)
			feedUsage(whole, body)
			want, wantComplete := scannedUsage(whole), hasFinalUsage(whole)
			if wantComplete && want == nil {
				t.Fatalf("%s: complete without usage", format)
			}
			if want != nil && !json.Valid(want) {
				t.Fatalf("%s sse=%v: usage is not JSON: %q", format, sse, want)
			}
			if !sse && want != nil && (want[0] != '{' || len(want) > maxUsageObject) {
				t.Fatalf("%s: usage of %d bytes: %.80q", format, len(want), want)
			}
			if sse && len(want) > 2*maxUsageObject+16 {
				t.Fatalf("%s: stream usage of %d bytes", format, len(want))
			}

			fed := newUsageScanner(format, sse)
			for off := 0; off < len(body); off += n {
				end := off + n
				if end > len(body) {
					end = len(body)
				}
				feedUsage(fed, body[off:end])
				if len(fed.carry) > jsonsse.MaxCarry {
					t.Fatalf("carry of %d bytes", len(fed.carry))
				}
			}
			if got := scannedUsage(fed); !bytes.Equal(got, want) || hasFinalUsage(fed) != wantComplete {
				t.Fatalf("%s sse=%v reads of %d: %q (%v), whole: %q (%v)", format, sse, n, got, hasFinalUsage(fed), want, wantComplete)
			}
		}
	})
}

// FuzzUsageScannerTrailingUsage: whatever valid JSON the model's output holds before it
// (tool inputs with "usage" keys, braces and quotes in strings, deep nesting), the top-level
// usage object that follows the output is the one found, in one read or many.
func FuzzUsageScannerTrailingUsage(f *testing.F) {
	f.Add([]byte(`{"usage":{"x":"{"}}`), uint32(7), uint8(0))
	f.Add([]byte(`["usage",{"a\"usage":{"usage":{}}},"\\"]`), uint32(0), uint8(3))
	f.Add([]byte(`{"usage":{"s":"\\","t":"{"},"usage" : {"o":1}}`), uint32(1<<31), uint8(1))
	f.Fuzz(func(t *testing.T, output []byte, tokens uint32, chunk uint8) {
		if len(output) > fuzzMaxInput || !json.Valid(output) {
			return
		}
		usage := `{"input_tokens":` + strconv.FormatUint(uint64(tokens), 10) + `,"output_tokens":1}`
		body := []byte(`{"id":"msg_1","content":` + string(output) + `,"usage":` + usage + `}`)
		for _, n := range []int{len(body), int(chunk) + 1} {
			s := newUsageScanner(usageAnthropic, false)
			for off := 0; off < len(body); off += n {
				end := off + n
				if end > len(body) {
					end = len(body)
				}
				feedUsage(s, body[off:end])
			}
			if got := string(scannedUsage(s)); got != usage || !hasFinalUsage(s) {
				t.Fatalf("reads of %d: usage %.200q, want %s", n, got, usage)
			}
		}

		// The same in a stream: the output's deltas, then the final usage chunk.
		delta, err := json.Marshal(map[string]json.RawMessage{"choices": json.RawMessage(`[{"delta":{"content":` + strconv.Quote("x") + `},"x":` + string(output) + `}]`)})
		if err != nil {
			return // output is valid but not something encoding/json re-encodes (e.g. depth)
		}
		stream := []byte("data: " + string(delta) + "\n\ndata: {\"choices\":[],\"usage\":" + usage + "}\n\ndata: [DONE]\n\n")
		s := newUsageScanner(usageChat, true)
		for off, n := 0, int(chunk)+1; off < len(stream); off += n {
			end := off + n
			if end > len(stream) {
				end = len(stream)
			}
			feedUsage(s, stream[off:end])
		}
		if got := string(scannedUsage(s)); got != usage || !hasFinalUsage(s) {
			t.Fatalf("stream: usage %.200q, want %s", got, usage)
		}
	})
}
