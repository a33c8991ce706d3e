package plugin

import (
	"bytes"
	"testing"

	"github.com/poolgate/poolgate/plugin/convert"
	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// FuzzSSEEvents: the SSE splitter (sse.go, and the converter's convert.NextEventEnd) cuts a stream
// exactly after blank lines ("\n\n" or "\n\r\n", the documented framing; a lone "\r" is no
// line end):
//   - eventBoundary finds the first blank line, convert.NextEventEnd agrees with it, and feeding
//     the stream in reads (as the converter does, resuming its search) finds the same events;
//   - the events joined with the rest re-create the stream byte for byte;
//   - lastEventBoundary finds the last blank line, so the committed relay (relayStream's
//     cut) only ever writes up to the end of a blank line, and what it writes joined with
//     what it keeps is the stream;
//   - a stream with LF line ends and its CRLF form split into the same events, with the
//     same name, data and classification (terminal, commits nothing);
//   - lastEvent of "...blank line + event" is that event.
func FuzzSSEEvents(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\"}\n\ndata: [DONE]\n\n"), uint8(3))
	f.Add([]byte("data: a\r\n\r\ndata: b\n\r\n\n\n: comment\n\ndata:"), uint8(1))
	f.Add([]byte("\n\n\n\r\n\r\n\n"), uint8(0))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"), uint8(7))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		if len(stream) > fuzzMaxInput {
			return
		}
		// At most 256 reads: the relay's search per read is over all it holds, as in
		// relayStream, whose reads are 32 KiB.
		n := int(chunk) + 1
		if m := len(stream) / 256; m > n {
			n = m
		}
		events, rest := splitEvents(t, stream)
		if joined := append(bytes.Join(events, nil), rest...); !bytes.Equal(joined, stream) {
			t.Fatalf("events joined are not the stream")
		}
		if fed := feedEvents(stream, n); !equalEvents(fed, events) {
			t.Fatalf("fed in reads of %d: %d events, whole: %d", n, len(fed), len(events))
		}
		if got, want := lastEventBoundary(stream), refLastBoundary(stream); got != want {
			t.Fatalf("lastEventBoundary %d, the last blank line ends at %d", got, want)
		}
		checkRelayCuts(t, stream, n)
		for _, ev := range events {
			// No panic on any event; an event that ends a stream in error is an error before
			// the commit point too, so that it is never relayed as an answer's start.
			if c := classify(ev); c.end == endError && c.hold != eventError {
				t.Fatalf("%q ends in error but holds as %d", ev, c.hold)
			}
		}
		classify(rest)

		if bytes.IndexByte(stream, '\r') < 0 {
			crlf := bytes.ReplaceAll(stream, []byte("\n"), []byte("\r\n"))
			cevents, crest := splitEvents(t, crlf)
			if len(cevents) != len(events) {
				t.Fatalf("CRLF form has %d events, LF form %d", len(cevents), len(events))
			}
			for i := range events {
				if classify(cevents[i]) != classify(events[i]) {
					t.Fatalf("event %d reads differently in CRLF form: %q", i, events[i])
				}
			}
			if classify(crest) != classify(rest) {
				t.Fatalf("the rest reads differently in CRLF form: %q", rest)
			}
		}

		// lastEvent finds a (non-blank) event after a blank line, whatever came before.
		if len(bytes.TrimRight(rest, "\r\n")) > 0 && eventBoundary(append([]byte("\n"), rest...)) < 0 {
			b := append(append(append([]byte(nil), stream[:len(stream)-len(rest)]...), "\n\n"...), rest...)
			b = append(b, "\n\n"...)
			if got, want := lastEvent(b), bytes.TrimRight(rest, "\r\n"); !bytes.Equal(got, want) {
				t.Fatalf("lastEvent %q, want %q", got, want)
			}
		}
	})
}

// splitEvents cuts b with eventBoundary and checks each cut against a byte-wise search.
func splitEvents(t *testing.T, b []byte) ([][]byte, []byte) {
	t.Helper()
	var events [][]byte
	for {
		end := eventBoundary(b)
		if want := refFirstBoundary(b); end != want {
			t.Fatalf("eventBoundary %d, the first blank line ends at %d: %q", end, want, b)
		}
		if got, _ := convert.NextEventEnd(b, 0); got != end {
			t.Fatalf("nextEventEnd %d, eventBoundary %d: %q", got, end, b)
		}
		if end < 0 {
			return events, b
		}
		events = append(events, b[:end])
		b = b[end:]
	}
}

// feedEvents splits b the way responsesStream.feed does: bytes arrive n at a time and the
// search resumes where it stopped.
func feedEvents(b []byte, n int) [][]byte {
	var events [][]byte
	var pending []byte
	scanned := 0
	for off := 0; off < len(b); off += n {
		end := off + n
		if end > len(b) {
			end = len(b)
		}
		pending = append(pending, b[off:end]...)
		start := 0
		for {
			e, resume := convert.NextEventEnd(pending, scanned)
			if e < 0 {
				scanned = resume
				break
			}
			events = append(events, append([]byte(nil), pending[start:e]...))
			start, scanned = e, e
		}
		pending = append(pending[:0], pending[start:]...)
		scanned -= start
	}
	return events
}

// checkRelayCuts replays relayStream's committed path: each read is appended to what is
// pending, everything up to the last blank line is written, the rest kept.
func checkRelayCuts(t *testing.T, b []byte, n int) {
	t.Helper()
	var written, pending []byte
	for off := 0; off < len(b); off += n {
		end := off + n
		if end > len(b) {
			end = len(b)
		}
		pending = append(pending, b[off:end]...)
		if cut := lastEventBoundary(pending); cut > 0 {
			if !endsWithBlankLine(pending[:cut]) {
				t.Fatalf("relay cut at %d is not after a blank line: %q", cut, pending[:cut])
			}
			written = append(written, pending[:cut]...)
			pending = append(pending[:0], pending[cut:]...)
		}
	}
	if !bytes.Equal(append(written, pending...), b) {
		t.Fatalf("relayed bytes differ from the stream")
	}
	if refLastBoundary(pending) >= 0 {
		t.Fatalf("the relay keeps a complete event: %q", pending)
	}
}

func endsWithBlankLine(b []byte) bool {
	return bytes.HasSuffix(b, jsonsse.BlankLF) || bytes.HasSuffix(b, jsonsse.BlankCRLF)
}

// refFirstBoundary and refLastBoundary are the byte-wise definitions: the end of the first
// (last) "\n\n" or "\n\r\n" in b, or -1.
func refFirstBoundary(b []byte) int {
	for i := 0; i < len(b); i++ {
		if end := blankLineAt(b, i); end > 0 {
			return end
		}
	}
	return -1
}

func refLastBoundary(b []byte) int {
	last := -1
	for i := 0; i < len(b); i++ {
		if end := blankLineAt(b, i); end > last {
			last = end
		}
	}
	return last
}

func blankLineAt(b []byte, i int) int {
	switch {
	case bytes.HasPrefix(b[i:], jsonsse.BlankLF):
		return i + 2
	case bytes.HasPrefix(b[i:], jsonsse.BlankCRLF):
		return i + 3
	}
	return -1
}

func equalEvents(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// eventClass is what the relay and the commit point read of one event.
type eventClass struct {
	name, data, typ    string
	terminal, harmless bool
	hold, end          int
}

func classify(ev []byte) eventClass {
	name, data := jsonsse.EventFields(ev)
	return eventClass{
		name: string(name), data: string(data), typ: eventType(name, data),
		terminal: isTerminalEvent(ev), harmless: commitsNothing(ev),
		hold: holdKind(ev), end: terminalKind(ev),
	}
}
