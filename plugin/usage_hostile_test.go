package plugin

import (
	"strings"
	"testing"
)

// feedSplit feeds body to a JSON usage scanner in reads of n bytes and returns its result.
func feedSplit(body string, n int) (string, bool) {
	s := newUsageScanner(usageAnthropic, false)
	b := []byte(body)
	for off := 0; off < len(b); off += n {
		end := off + n
		if end > len(b) {
			end = len(b)
		}
		feedUsage(s, b[off:end])
	}
	return string(scannedUsage(s)), hasFinalUsage(s)
}

// The model's own output (a tool's input) may hold "usage" keys; the reply's top-level
// usage comes after the output, so it must be the one found, whatever those objects hold.
func TestJSONUsageScannerHostileOutput(t *testing.T) {
	const real = `{"input_tokens":5000,"output_tokens":3000}`
	tail := `],"stop_reason":"tool_use","usage":` + real + `}`
	tests := []struct {
		name string
		body string
		want string
	}{
		{"brace inside a string of a fake usage swallows the real one",
			`{"content":[{"type":"tool_use","input":{"a":{"usage":{"input_tokens":1,"output_tokens":1}},` +
				`"b":{"usage":{"x":"{"}}}}` + tail, real},
		{"unbalanced braces in strings", `{"content":[{"input":{"usage":{"s":"{{{{","t":"}"}}}` + tail, real},
		{"escaped quote before a brace", `{"content":[{"input":{"usage":{"s":"\"{"}}}` + tail, real},
		{"escaped backslash ends the string", `{"content":[{"input":{"usage":{"s":"\\","t":"{"}}}` + tail, real},
		{"usage string inside a string", `{"content":[{"text":"\"usage\":{\"input_tokens\":1}"}` + tail, real},
		{"usage as a string value", `{"content":[{"text":"usage","k":"usage"}` + tail, real},
		{"nested objects in the real usage", `{"content":[]` + `,"usage":{"input_tokens":5,"cache":{"a":{"b":1}},"output_tokens":7}}`,
			`{"input_tokens":5,"cache":{"a":{"b":1}},"output_tokens":7}`},
		{"fake usage over 64 KiB before the real one",
			`{"content":[{"input":{"usage":{"s":"` + strings.Repeat("{", 70<<10) + `"}}}` + tail, real},
	}
	for _, tt := range tests {
		for _, n := range []int{1, 2, 3, 7, 64, 1 << 20} {
			got, complete := feedSplit(tt.body, n)
			if got != tt.want || !complete {
				t.Errorf("%s, reads of %d: usage %.80s (complete %v), want %s", tt.name, n, got, complete, tt.want)
			}
		}
	}
}

// FuzzUsageScannerSplit: whatever the reply, the scanner does not panic, holds at most one
// usage object's worth of bytes, and finds the same usage however the reply is split into
// reads. The seeds are the hostile cases above; failures found go to testdata/fuzz.
func FuzzUsageScannerSplit(f *testing.F) {
	seeds := []string{
		`{"usage":{"input_tokens":1,"output_tokens":2}}`,
		`{"a":{"usage":{"x":"{"}},"usage":{"input_tokens":3}}`,
		`{"usage":{"s":"\\","t":"{"},"usage" : {"o":1}}`,
		`{"usage":null,"usage":"usage","\"usage":{"k":1}}`,
		"data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":1}}}\n\n",
		"data: {\"choices\":[],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9}}}\n\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint16(1), uint16(5), false)
		f.Add([]byte(s), uint16(3), uint16(7), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, a, b uint16, sse bool) {
		for _, format := range []string{usageResponses, usageChat, usageAnthropic} {
			whole := newUsageScanner(format, sse)
			feedUsage(whole, body)
			want, wantComplete := string(scannedUsage(whole)), hasFinalUsage(whole)

			split := newUsageScanner(format, sse)
			i, j := int(a)%(len(body)+1), int(b)%(len(body)+1)
			if i > j {
				i, j = j, i
			}
			feedUsage(split, body[:i])
			feedUsage(split, body[i:j])
			feedUsage(split, body[j:])
			if got := string(scannedUsage(split)); got != want || hasFinalUsage(split) != wantComplete {
				t.Fatalf("%s sse=%v split at %d,%d: %q (%v), whole: %q (%v)", format, sse, i, j, got, hasFinalUsage(split), want, wantComplete)
			}
			if n := len(split.body.capture) + len(split.body.found) + len(split.body.tail); n > 2*maxUsageObject {
				t.Fatalf("the scanner holds %d bytes", n)
			}
		}
	})
}

// A usage object longer than maxUsageObject is not a usage object, in a stream as in a JSON
// reply: it would go into the report as it is, and a batch of reports over controlsvc's
// body limit is refused whole (400), every report in it lost.
func TestSSEUsageScannerDropsOverlongUsage(t *testing.T) {
	huge := `{"input_tokens":1,"output_tokens":2,"pad":"` + strings.Repeat("x", maxUsageObject) + `"}`
	tests := []struct {
		name   string
		format string
		stream string
		want   string
	}{
		{"responses: over-long usage", usageResponses,
			`data: {"type":"response.completed","response":{"usage":` + huge + "}}\n\n", ""},
		{"chat: over-long usage, then a real one", usageChat,
			`data: {"choices":[],"usage":` + huge + "}\n\n" + `data: {"choices":[],"usage":{"prompt_tokens":3}}` + "\n\n",
			`{"prompt_tokens":3}`},
		{"anthropic: over-long message_start usage", usageAnthropic,
			`data: {"type":"message_start","message":{"usage":` + huge + "}}\n\n" +
				`data: {"type":"message_delta","usage":{"output_tokens":7}}` + "\n\n", `{"output_tokens":7}`},
	}
	for _, tt := range tests {
		for _, n := range []int{1000, 1 << 20} {
			s := newUsageScanner(tt.format, true)
			b := []byte(tt.stream)
			for off := 0; off < len(b); off += n {
				end := off + n
				if end > len(b) {
					end = len(b)
				}
				feedUsage(s, b[off:end])
			}
			if got := string(scannedUsage(s)); got != tt.want {
				t.Errorf("%s, reads of %d: usage %.80s, want %s", tt.name, n, got, tt.want)
			}
		}
	}
}
