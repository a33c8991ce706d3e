package convert

// Anthropic Messages stream → Responses stream, event by event
// (docs/design.md, "Conversion contract"): response.in_progress follows
// response.created, reasoning summary parts are announced, and an upstream error event or
// a stream without message_stop ends in response.failed — or response.incomplete when
// max_tokens stopped it — never in a synthesized response.completed.
//
// Per event the interpreted work is one json.Unmarshal into a small struct and a few
// appends to a reused buffer: delta texts are never decoded, their JSON string literals are
// copied through and concatenated. This file frames and decodes the upstream events;
// items.go opens and closes the output items, response.go renders them.
//
// Wiring (converted.go): the caller holds the returned bytes until started() (the commit
// point) and may fail over before it, e.g. on upstreamError(); it ends a cut or stalled
// stream with fail(), a clean EOF with finish(), and reports anthropicUsage().

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

// Kinds of the Anthropic content block being converted.
const (
	blockIgnored  = 0 // server tool results, anything unknown
	blockIsText   = 1
	blockThinking = 2
	blockTool     = 3
	blockCustom   = 4 // a tool_use of a custom tool: a custom_tool_call item
	blockRedacted = 5 // redacted thinking: a reasoning item with its data
	blockSearch   = 6 // a server web search: a web_search_call item
)

// Response statuses.
const (
	statusCompleted  = "completed"
	statusIncomplete = "incomplete"
	statusFailed     = "failed"
)

// anthEvent is one Anthropic stream event; which fields are set depends on its type.
type anthEvent struct {
	Type         string          `json:"type"`
	Index        int64           `json:"index"`
	Message      *anthStart      `json:"message"`
	ContentBlock *anthBlockStart `json:"content_block"`
	Delta        *anthDelta      `json:"delta"`
	Usage        *anthUsage      `json:"usage"`
}

type anthStart struct {
	Usage *anthUsage `json:"usage"`
}

type anthBlockStart struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Text      json.RawMessage `json:"text"`
	Thinking  json.RawMessage `json:"thinking"`
	Signature json.RawMessage `json:"signature"`
	Data      json.RawMessage `json:"data"`
}

// anthDelta is a content_block_delta's delta, or a message_delta's.
type anthDelta struct {
	Type        string          `json:"type"`
	Text        json.RawMessage `json:"text"`
	Thinking    json.RawMessage `json:"thinking"`
	PartialJSON json.RawMessage `json:"partial_json"`
	Signature   json.RawMessage `json:"signature"`
	StopReason  string          `json:"stop_reason"`
}

// anthUsage is an Anthropic usage object; nil fields were absent or null.
type anthUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
}

// convBlock is the content block being converted. Anthropic streams blocks one after the
// other; a block that starts while another is open closes that one first.
type convBlock struct {
	active bool
	index  int64
	kind   int
	outIdx int
	itemID string
	// ref is the item reference every event of the block carries: item_id, output_index
	// and, for text, content_index.
	ref    []byte
	callID []byte // JSON strings of a tool call
	name   []byte
	// The delta events' bytes before the sequence number, and after the delta.
	deltaPrefix []byte
	deltaTail   []byte
	// text is the accumulated content, as the inside of a JSON string literal.
	text     []byte
	partOpen bool // a reasoning summary part was announced
	// sig is a reasoning item's encrypted_content (the inside of a JSON string): the
	// thinking signature or the redacted data, with its prefix (reasoning.go).
	sig       []byte
	namespace []byte // JSON string of a namespaced function_call's namespace, or nil
}

// convMessage is the open assistant message item: consecutive text blocks are its parts.
type convMessage struct {
	open   bool
	outIdx int
	id     string
	parts  [][]byte // rendered output_text parts
}

// Stream converts one upstream Anthropic stream. It is not safe for concurrent
// use. The byte slices its methods return are reused by the next call: write or copy them
// first.
type Stream struct {
	id        string
	itemBase  string
	model     []byte // JSON string: the client's model
	createdAt int64
	seq       int64
	out       []byte
	pending   []byte // upstream bytes of an unfinished event (feed)
	scanned   int    // how far pending was searched for the event's end

	created  bool
	semantic bool
	status   string // "" until the terminal event
	stop     string // stop_reason
	errCode  string
	errMsg   string
	upErr    bool   // the failure is an upstream error event
	upType   string // its Anthropic error type
	usage    tokenCounts
	final    bool // a message_delta carried usage: the counts are the final ones
	nextOut  int
	items    [][]byte // rendered done items, by output_index
	msg      convMessage
	cur      convBlock
	// tools maps the flat tool names of the converted request back (agents.go).
	tools *Tools
}

// newResponsesStream starts a conversion answering as responseID ("resp_…") for the
// client's model, created at the given Unix time.
func newResponsesStream(model, responseID string, createdAt int64) *Stream {
	m, err := jsonsse.Encode(model)
	if err != nil {
		m = []byte(`""`)
	}
	return &Stream{id: responseID, itemBase: strings.TrimPrefix(responseID, "resp_"),
		model: m, createdAt: createdAt, out: make([]byte, 0, 1024)}
}

// event converts one Anthropic event (its SSE event name, which may be empty, and data)
// into Responses SSE bytes.
func (s *Stream) event(name, data []byte) []byte {
	s.out = s.out[:0]
	s.handle(name, data, nil)
	return s.out
}

// feed converts raw upstream body bytes: complete events are converted, the rest waits
// for the next call (or finish).
func (s *Stream) feed(p []byte) []byte {
	s.out = s.out[:0]
	s.pending = append(s.pending, p...)
	off := 0
	for {
		end, resume := nextEventEnd(s.pending, s.scanned)
		if end < 0 {
			s.scanned = resume
			break
		}
		s.block(s.pending[off:end])
		off, s.scanned = end, end
	}
	if off > 0 {
		s.pending = s.pending[:copy(s.pending, s.pending[off:])]
		s.scanned -= off
	}
	if len(s.pending) > jsonsse.MaxCarry {
		s.pending, s.scanned = s.pending[:0], 0
		s.failWith(wire.TypeUpstream, "Upstream event too large", false)
	}
	return s.out
}

// nextEventEnd returns the index just past the first blank line ("\n\n" or "\n\r\n") of b
// at or after from, or -1 and where to resume the search once more bytes arrived (an event
// arriving in many small reads is not searched again from its start). Two compiled searches
// per event: the CRLF one only up to the first LF blank line.
func nextEventEnd(b []byte, from int) (int, int) {
	rest := b[from:]
	limit := len(rest)
	i := bytes.Index(rest, jsonsse.BlankLF)
	if i >= 0 {
		limit = i + 2
	}
	if j := bytes.Index(rest[:limit], jsonsse.BlankCRLF); j >= 0 {
		return from + j + 3, 0
	}
	if i >= 0 {
		return from + i + 2, 0
	}
	// Resume two bytes back: a blank line may have begun at the end.
	resume := len(b) - 2
	if resume < from {
		resume = from
	}
	return -1, resume
}

// finish ends the conversion at a clean end of the upstream body: a last event without its
// blank line still counts; without message_stop the response fails, or is incomplete when
// max_tokens stopped it.
func (s *Stream) finish() []byte {
	s.out = s.out[:0]
	if len(s.pending) > 0 {
		s.block(s.pending)
		s.pending, s.scanned = s.pending[:0], 0
	}
	if s.status == "" {
		if incompleteReason(s.stop) != "" {
			s.complete()
		} else {
			s.failWith(wire.TypeUpstream, wire.MsgStreamCut, false)
		}
	}
	return s.out
}

// fail ends the conversion with response.failed for a reason of the caller's (a cut or
// idle stream, a timeout); nothing when the response already ended.
func (s *Stream) fail(typ, msg string) []byte {
	s.out = s.out[:0]
	s.failWith(typ, msg, false)
	return s.out
}

// started reports whether semantic output was converted: a text or thinking delta, or a
// tool call. Until then nothing the client would miss was produced (the commit point).
func (s *Stream) started() bool { return s.semantic }

// usageComplete reports whether the upstream's final usage (message_delta's) was seen;
// message_start's alone counts the input only.
func (s *Stream) usageComplete() bool { return s.final }

// finalStatus is "completed", "incomplete" or "failed" once the response ended, else "".
func (s *Stream) finalStatus() string { return s.status }

// upstreamError returns the type and message of the Anthropic error event that failed the
// response; ok is false when none did.
func (s *Stream) upstreamError() (typ, msg string, ok bool) {
	return s.upType, s.errMsg, s.upErr
}

// block converts one SSE event block. Anthropic sends `event: <type>` then one `data:`
// line; the data line is found with one compiled search, and the event name is read only
// when the data names no type.
func (s *Stream) block(b []byte) {
	i := bytes.Index(b, jsonsse.DataPrefix)
	if i < 0 || (i > 0 && b[i-1] != '\n') {
		_, data := jsonsse.EventFields(b) // an unusual layout: parse line by line
		if len(data) > 0 {
			s.handle(nil, data, b)
		}
		return
	}
	// The data line up to its newline; encoding/json skips the spaces around the value.
	data := b[i+len(jsonsse.DataPrefix):]
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	s.handle(nil, data, b)
}

// handle converts one event: its name (nil: read it from block when needed) and data.
func (s *Stream) handle(name, data, block []byte) {
	if s.status != "" {
		return
	}
	var ev anthEvent
	err := json.Unmarshal(data, &ev)
	typ := ev.Type
	if typ == "" {
		if name == nil && block != nil {
			name, _ = jsonsse.EventFields(block)
		}
		typ = string(name)
	}
	if typ == "error" {
		etyp, emsg := jsonsse.ErrorFields(data, wire.TypeAPI, "Upstream stream error")
		s.upType = etyp
		s.failWith(etyp, emsg, true)
		return
	}
	if err != nil {
		return // not an event this conversion knows how to read
	}
	switch typ {
	case "content_block_delta":
		// Text, thinking and tool arguments convert; signature_delta, citations_delta and
		// the deltas of ignored blocks convert to nothing. (Inline: the hot path.)
		c, d := &s.cur, ev.Delta
		if !c.active || ev.Index != c.index || d == nil {
			return
		}
		switch {
		case d.Type == "text_delta" && c.kind == blockIsText:
			s.emitDelta(d.Text)
		case d.Type == "thinking_delta" && c.kind == blockThinking:
			s.emitDelta(d.Thinking)
		case d.Type == "input_json_delta" && c.kind == blockTool:
			s.emitDelta(d.PartialJSON)
		case d.Type == "input_json_delta" && (c.kind == blockCustom || c.kind == blockSearch):
			c.text = append(c.text, stringBody(d.PartialJSON)...) // rendered when the block ends
		case d.Type == "signature_delta" && c.kind == blockThinking:
			c.sig = append(c.sig, stringBody(d.Signature)...)
		}
	case "message_start":
		s.start()
		if ev.Message != nil {
			s.usage.merge(ev.Message.Usage)
		}
	case "content_block_start":
		s.start()
		s.blockStart(ev.Index, ev.ContentBlock)
	case "content_block_stop":
		if s.cur.active && ev.Index == s.cur.index {
			s.closeBlock()
		}
	case "message_delta":
		if ev.Delta != nil && ev.Delta.StopReason != "" {
			s.stop = ev.Delta.StopReason
		}
		s.usage.merge(ev.Usage)
		if ev.Usage != nil {
			s.final = true
		}
	case "message_stop":
		s.complete()
	}
}
