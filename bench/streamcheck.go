package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The checks of the convert part's responses (convert.go): a figure is only printed for a
// case whose every response passed them.

// sseFrame is one SSE event: its event name and its data line.
type sseFrame struct{ name, data []byte }

// parseFrames splits an SSE body at its blank lines. Comment lines (a keep-alive) are
// skipped, and so is a frame that holds nothing else.
func parseFrames(b []byte) []sseFrame {
	frames := make([]sseFrame, 0, convDeltas+16)
	for len(b) > 0 {
		var block []byte
		if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
			block, b = b[:i], b[i+2:]
		} else {
			block, b = b, nil
		}
		var f sseFrame
		for len(block) > 0 {
			line := block
			if j := bytes.IndexByte(block, '\n'); j >= 0 {
				line, block = block[:j], block[j+1:]
			} else {
				block = nil
			}
			switch {
			case bytes.HasPrefix(line, []byte("event: ")):
				f.name = line[len("event: "):]
			case bytes.HasPrefix(line, []byte("data: ")):
				f.data = line[len("data: "):]
			}
		}
		if f.name != nil || f.data != nil {
			frames = append(frames, f)
		}
	}
	return frames
}

// checkStream is the check of every response: the terminal event last, convDeltas delta
// events and the expected number of events in all.
func checkStream(c streamCase, frames []sseFrame) error {
	if len(frames) == 0 {
		return fmt.Errorf("the stream held no event")
	}
	if last := frames[len(frames)-1]; string(last.name) != c.lastEvent {
		return fmt.Errorf("the stream ended with %q, not %s, after %d events: %.300s", last.name, c.lastEvent, len(frames), last.data)
	}
	deltas := 0
	for _, f := range frames {
		if string(f.name) == c.deltaEvent {
			deltas++
		}
	}
	if deltas != convDeltas || len(frames) != c.events {
		return fmt.Errorf("%d events with %d %s, want %d with %d", len(frames), deltas, c.deltaEvent, c.events, convDeltas)
	}
	return nil
}

// checkStreamDeep is the check of each client's first response: every data line is JSON
// whose type is the event's name, Responses events number themselves from 0, and the
// deltas join to the text the fake upstream was told to stream.
func checkStreamDeep(c streamCase, frames []sseFrame) error {
	var text strings.Builder
	for i, f := range frames {
		var ev struct {
			Type  string          `json:"type"`
			Seq   *int            `json:"sequence_number"`
			Delta json.RawMessage `json:"delta"`
		}
		if err := json.Unmarshal(f.data, &ev); err != nil {
			return fmt.Errorf("event %d (%s): data is not JSON: %v", i, f.name, err)
		}
		if ev.Type != string(f.name) {
			return fmt.Errorf("event %d: named %q, data of type %q", i, f.name, ev.Type)
		}
		if c.responses && (ev.Seq == nil || *ev.Seq != i) {
			return fmt.Errorf("event %d (%s): sequence_number %v, want %d", i, f.name, ev.Seq, i)
		}
		if ev.Type != c.deltaEvent {
			continue
		}
		if c.responses {
			var s string
			if err := json.Unmarshal(ev.Delta, &s); err != nil {
				return fmt.Errorf("event %d: delta is not a string: %.100s", i, ev.Delta)
			}
			text.WriteString(s)
			continue
		}
		var d struct {
			Type, Text string
		}
		if err := json.Unmarshal(ev.Delta, &d); err != nil || d.Type != "text_delta" {
			return fmt.Errorf("event %d: delta is not a text_delta: %.100s", i, ev.Delta)
		}
		text.WriteString(d.Text)
	}
	if want := convText(convDeltas); text.String() != want {
		return fmt.Errorf("the deltas join to %d bytes that differ from the %d streamed", text.Len(), len(want))
	}
	return nil
}
