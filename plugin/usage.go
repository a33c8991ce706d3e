package plugin

import (
	"bytes"
	"encoding/json"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Usage extraction from upstream replies as their bytes pass to the client (docs/billing.md,
// "Disconnects, drains and estimates"): nothing of a reply is kept beyond a few bytes of carry and the
// usage object itself, whatever the reply's size.

// maxUsageObject bounds the usage object taken from a reply, JSON or stream; a longer
// object after a "usage" key is not a usage object and is dropped.
const maxUsageObject = 64 << 10

var usageKey = []byte(`"usage"`)

// usageScanner pulls the usage object out of a reply as it streams by. JSON replies are
// searched for their "usage" object (jsonUsage). SSE replies are scanned with bytes.Index
// for `"usage"`, and only complete data lines that contain it are decoded; the unfinished
// last line of a read is carried over to the next.
type usageScanner struct {
	format string
	sse    bool

	body jsonUsage // JSON replies

	carry    []byte
	skipping bool // inside an over-long line: ignore bytes until its end

	final []byte // responses/chat usage, or anthropic message_delta usage
	start []byte // anthropic message_start usage
}

func newUsageScanner(format string, sse bool) *usageScanner {
	return &usageScanner{format: format, sse: sse}
}

// feedUsage scans one read of a reply. A plain function, not a method: it runs per read,
// and under Yaegi a call of an interpreted method costs about 5x a function call
// (docs/yaegi.md).
func feedUsage(s *usageScanner, p []byte) {
	if !s.sse {
		feedJSONUsage(&s.body, p)
		return
	}
	if !s.skipping && len(s.carry) == 0 && len(p) > 0 && p[len(p)-1] == '\n' && !bytes.Contains(p, usageKey) {
		return // whole lines without usage: the common read of a stream, one stdlib call
	}
	if s.skipping || len(s.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			extendUsageCarry(s, p)
			return
		}
		if !s.skipping {
			s.carry = append(s.carry, p[:i]...)
			scanUsageLines(s, s.carry)
		}
		s.carry = s.carry[:0]
		s.skipping = false
		p = p[i+1:]
	}
	last := bytes.LastIndexByte(p, '\n')
	scanUsageLines(s, p[:last+1])
	extendUsageCarry(s, p[last+1:])
}

// extendUsageCarry keeps the unfinished last line of a read. It and scanUsageLines are plain
// functions, as feedUsage: a read split mid-line runs them.
func extendUsageCarry(s *usageScanner, p []byte) {
	if s.skipping || len(p) == 0 {
		return
	}
	if len(s.carry)+len(p) > jsonsse.MaxCarry {
		s.carry = s.carry[:0]
		s.skipping = true
		return
	}
	s.carry = append(s.carry, p...)
}

// scanUsageLines decodes the lines of b (complete lines, or one line without its newline) that
// contain a non-null "usage".
func scanUsageLines(s *usageScanner, b []byte) {
	off := 0
	for off < len(b) {
		i := bytes.Index(b[off:], usageKey)
		if i < 0 {
			return
		}
		pos := off + i
		if nullAfterKey(b[pos+len(usageKey):]) {
			off = pos + len(usageKey)
			continue
		}
		lineStart := bytes.LastIndexByte(b[:pos], '\n') + 1
		lineEnd := len(b)
		if j := bytes.IndexByte(b[pos:], '\n'); j >= 0 {
			lineEnd = pos + j
		}
		scanUsageLine(s, b[lineStart:lineEnd])
		off = lineEnd + 1
	}
}

// nullAfterKey reports whether the bytes after a key (`"usage"`, `"finish_reason"`) are
// `:null` (spaces allowed): Chat chunks carry "usage":null until the last one.
func nullAfterKey(rest []byte) bool {
	rest = bytes.TrimLeft(rest, " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t"), []byte("null"))
}

func scanUsageLine(s *usageScanner, l []byte) {
	l = bytes.TrimSpace(l)
	if !bytes.HasPrefix(l, jsonsse.DataPrefix) {
		return
	}
	kind, usage := sseUsage(s.format, bytes.TrimSpace(l[len(jsonsse.DataPrefix):]))
	if len(usage) > maxUsageObject {
		// Not a usage object (as in a JSON reply): it would go into the report as it is,
		// and a report batch over controlsvc's body limit is refused whole.
		return
	}
	switch kind {
	case sseFinalUsage:
		s.final = usage
	case sseAnthropicDelta:
		s.final = mergeAnthropicUsage(s.final, usage) // several deltas merge field by field too
	case sseAnthropicStart:
		s.start = usage
	}
}

// scannedUsage returns the raw usage JSON of the reply, or nil. For an Anthropic stream that
// ended early it may be message_start's partial usage (complete says which).
func scannedUsage(s *usageScanner) []byte {
	if !s.sse {
		return s.body.found
	}
	if len(s.carry) > 0 && !s.skipping {
		// The stream ended without a final newline: the last line is still complete JSON.
		scanUsageLines(s, s.carry)
		s.carry = s.carry[:0]
	}
	if s.format == usageAnthropic {
		return mergeAnthropicUsage(s.start, s.final)
	}
	return s.final
}

// hasFinalUsage reports whether the reply carried its final usage: the JSON reply's usage
// object, the terminal Responses event's, Chat's usage chunk, or an Anthropic
// message_delta's. Call it after scannedUsage.
func hasFinalUsage(s *usageScanner) bool {
	if !s.sse {
		return s.body.found != nil
	}
	return s.final != nil
}

// States of jsonUsage.
const (
	jsonSearching  = 0 // looking for `"usage"`
	jsonAfterKey   = 1 // `"usage"` seen: expecting ':'
	jsonAfterColon = 2 // expecting the value: '{' starts a capture, anything else resumes the search
	jsonCapturing  = 3 // inside the object, up to its closing brace
)

// jsonUsage finds the "usage" object of a JSON reply as the bytes pass, so that a reply of
// any size yields its usage with bounded memory. Per read the common case is one
// bytes.Index; a key split between two reads is found from the few bytes carried over
// (tail). The object is captured from its '{' to the '}' that balances it (counted outside
// strings, confirmed by jsonValid), at most maxUsageObject bytes. The last complete
// object wins: all three APIs put the top-level usage after the output, which is where a
// "usage" key of the model's own (a tool's input object) would be.
type jsonUsage struct {
	state   int
	tail    []byte // the end of the last read when it is the start of `"usage"`
	capture []byte
	depth   int // braces opened minus closed in capture, outside strings
	// inString and escaped: where capture ends, inside a string, after its backslash.
	inString bool
	escaped  bool
	found    []byte
}

func feedJSONUsage(j *jsonUsage, p []byte) {
	for len(p) > 0 {
		switch j.state {
		case jsonCapturing:
			p = extendUsageCapture(j, p)
		case jsonAfterKey, jsonAfterColon:
			p = afterKey(j, p)
		default:
			p = searchUsageKey(j, p)
		}
	}
}

// searchUsageKey looks for the key in p and returns what follows it (nil when p has none).
func searchUsageKey(j *jsonUsage, p []byte) []byte {
	if len(j.tail) > 0 {
		rest := usageKey[len(j.tail):]
		switch {
		case len(p) >= len(rest) && bytes.HasPrefix(p, rest):
			j.tail = j.tail[:0]
			j.state = jsonAfterKey
			return p[len(rest):]
		case len(p) < len(rest) && bytes.HasPrefix(rest, p):
			j.tail = append(j.tail, p...)
			return nil
		}
		j.tail = j.tail[:0]
	}
	i := bytes.Index(p, usageKey)
	if i < 0 {
		keepTail(j, p)
		return nil
	}
	j.state = jsonAfterKey
	return p[i+len(usageKey):]
}

// keepTail keeps the end of p when it could be the start of the key: from the last quote
// among its last len(usageKey)-1 bytes (the key's proper prefixes hold one quote, first).
func keepTail(j *jsonUsage, p []byte) {
	from := len(p) - (len(usageKey) - 1)
	if from < 0 {
		from = 0
	}
	for i := len(p) - 1; i >= from; i-- {
		if p[i] == '"' {
			if bytes.HasPrefix(usageKey, p[i:]) {
				j.tail = append(j.tail[:0], p[i:]...)
			}
			return
		}
	}
}

// afterKey reads the ':' and the start of the value after the key, skipping white space.
func afterKey(j *jsonUsage, p []byte) []byte {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			continue
		}
		switch {
		case j.state == jsonAfterKey && c == ':':
			j.state = jsonAfterColon
		case j.state == jsonAfterColon && c == '{':
			j.state = jsonCapturing
			resetCapture(j)
			return p[i:]
		default:
			// A "usage" string value, null, or not JSON: search on from here.
			j.state = jsonSearching
			return p[i:]
		}
	}
	return nil
}

// extendUsageCapture captures the object up to its balancing '}' and returns the bytes after it (nil
// when p ends inside the object). Braces are counted outside strings only: a usage key in
// the model's output (a tool's input) may hold a string like "{", and a count that took it
// for a brace would run past that object's end and swallow the real usage after it. Each
// step is one bytes.IndexAny over the bytes up to the next quote, backslash or brace, so a
// real usage object costs a few dozen steps.
func extendUsageCapture(j *jsonUsage, p []byte) []byte {
	if len(j.capture) == 0 && j.depth == 0 {
		if obj, n := wholeObject(p); obj != nil {
			j.found = obj
			j.state = jsonSearching
			return p[n:]
		}
	}
	i := 0
	closed := false
	for i < len(p) && !closed {
		if j.escaped {
			j.escaped = false
			i++
			continue
		}
		specials := "{}\""
		if j.inString {
			specials = "\\\""
		}
		k := bytes.IndexAny(p[i:], specials)
		if k < 0 {
			i = len(p)
			break
		}
		i += k
		switch p[i] {
		case '\\':
			j.escaped = true
		case '"':
			j.inString = !j.inString
		case '{':
			j.depth++
		case '}':
			j.depth--
			closed = j.depth == 0
		}
		i++
	}
	if len(j.capture)+i > maxUsageObject {
		// Too long for a usage object: drop it and search on after these bytes.
		resetCapture(j)
		j.state = jsonSearching
		return p[i:]
	}
	j.capture = append(j.capture, p[:i]...)
	if !closed {
		return nil
	}
	if jsonValid(j.capture) {
		j.found = append([]byte(nil), j.capture...) // a copy: capture is reused
	}
	resetCapture(j)
	j.state = jsonSearching
	return p[i:]
}

// wholeObject is the JSON object at the start of p and the bytes it takes, when p holds
// all of it: the common case, a usage object inside one read, found by one compiled
// decode instead of extend's interpreted steps. nil when the object is cut off by the end
// of p, is not valid JSON or is longer than maxUsageObject: extend's steps take those.
func wholeObject(p []byte) ([]byte, int) {
	d := json.NewDecoder(bytes.NewReader(p))
	var obj json.RawMessage
	if d.Decode(&obj) != nil || len(obj) > maxUsageObject || len(obj) == 0 || obj[0] != '{' {
		return nil, 0
	}
	return obj, int(d.InputOffset())
}

func resetCapture(j *jsonUsage) {
	j.capture = j.capture[:0]
	j.depth = 0
	j.inString = false
	j.escaped = false
}
