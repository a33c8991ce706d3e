package jsonsse

import "bytes"

// MaxCarry bounds one SSE line or event kept across reads.
const MaxCarry = 4 << 20

// The bytes that frame SSE: an event ends at a blank line, LF or CRLF.
var (
	BlankLF    = []byte("\n\n")
	BlankCRLF  = []byte("\n\r\n")
	EventTag   = []byte("event:")
	DataPrefix = []byte("data:")
)

// EventFields returns the event name and the first data value of one SSE event block
// (either may be empty). Comment lines are skipped.
func EventFields(block []byte) (name, data []byte) {
	for len(block) > 0 {
		line := block
		rest := []byte(nil)
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, rest = block[:i], block[i+1:]
		}
		block = rest
		line = bytes.TrimRight(line, "\r")
		switch {
		case bytes.HasPrefix(line, EventTag):
			name = bytes.TrimSpace(line[len(EventTag):])
		case data == nil && bytes.HasPrefix(line, DataPrefix):
			data = bytes.TrimSpace(line[len(DataPrefix):])
		}
	}
	return name, data
}
