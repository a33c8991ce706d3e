package convert

// The item lifecycle of stream.go: Anthropic content blocks open and close
// Responses output items (a message with one output_text part per text block, a reasoning
// item per thinking block, a function_call item per tool_use block), and the response
// ends completed, incomplete or failed. Usage is merged here too.

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/poolgate/poolgate/plugin/wire"
)

// tokenCounts is the merged usage, in Anthropic's exclusive buckets.
type tokenCounts struct {
	seen          bool
	input         int64
	output        int64
	cacheRead     int64
	cacheCreation int64
}

// merge applies a later usage object: every present value overwrites, zeros included
// (message_delta's counts are cumulative).
func (t *tokenCounts) merge(u *anthUsage) {
	if u == nil {
		return
	}
	if u.InputTokens != nil {
		t.input, t.seen = *u.InputTokens, true
	}
	if u.OutputTokens != nil {
		t.output, t.seen = *u.OutputTokens, true
	}
	if u.CacheReadInputTokens != nil {
		t.cacheRead, t.seen = *u.CacheReadInputTokens, true
	}
	if u.CacheCreationInputTokens != nil {
		t.cacheCreation, t.seen = *u.CacheCreationInputTokens, true
	}
}

// start emits response.created and response.in_progress, once.
func (s *Stream) start() {
	if s.created {
		return
	}
	s.created = true
	s.responseEvent("response.created", "in_progress")
	s.responseEvent("response.in_progress", "in_progress")
}

func (s *Stream) blockStart(index int64, cb *anthBlockStart) {
	if s.cur.active {
		s.closeBlock()
	}
	s.cur = convBlock{active: true, index: index, text: s.cur.text[:0], sig: s.cur.sig[:0]}
	if cb == nil {
		return
	}
	switch cb.Type {
	case "text":
		s.openMessage()
		s.cur.kind = blockIsText
		s.cur.outIdx = s.msg.outIdx
		s.cur.itemID = s.msg.id
		s.cur.ref = appendItemRef(nil, s.msg.id, s.msg.outIdx, len(s.msg.parts), true)
		s.cur.deltaPrefix, s.cur.deltaTail = textDeltaPrefix, textDeltaTail
		s.contentPartAdded()
		s.emitDelta(cb.Text)
	case "thinking":
		s.closeMessage()
		s.cur.kind = blockThinking
		s.newItem("rs_")
		s.cur.ref = append(s.cur.ref, `,"summary_index":0`...)
		s.cur.deltaPrefix, s.cur.deltaTail = thinkingDeltaPrefix, plainDeltaTail
		s.cur.sig = append(s.cur.sig, thinkingSigPrefix...)
		s.cur.sig = append(s.cur.sig, stringBody(cb.Signature)...)
		s.outputItemAdded()
		s.emitDelta(cb.Thinking)
	case "tool_use":
		s.closeMessage()
		ref := s.tools.lookup(cb.Name)
		s.cur.kind = blockTool
		prefix := "fc_"
		if ref.kind == toolCustom {
			s.cur.kind, prefix = blockCustom, "ctc_"
		}
		s.newItem(prefix)
		id := cb.ID
		if id == "" {
			id = s.itemID("call_", s.cur.outIdx) // a call the client can answer needs an id
		}
		s.cur.callID = appendJSONString(nil, id)
		s.cur.name = appendJSONString(nil, ref.name)
		s.cur.namespace = nil
		if ref.namespace != "" {
			s.cur.namespace = appendJSONString(nil, ref.namespace)
		}
		s.cur.deltaPrefix, s.cur.deltaTail = argumentsDeltaPrefix, plainDeltaTail
		s.semantic = true
		s.outputItemAdded()
	case "redacted_thinking":
		s.closeMessage()
		s.cur.kind = blockRedacted
		s.newItem("rs_")
		s.cur.sig = append(append(s.cur.sig, redactedPrefix...), stringBody(cb.Data)...)
		s.semantic = true
		s.outputItemAdded()
	case "server_tool_use":
		s.closeMessage()
		s.cur.kind = blockSearch
		s.newItem("ws_")
		s.semantic = true
		s.outputItemAdded()
	}
}

// newItem gives the current block the next output index and an item id.
func (s *Stream) newItem(prefix string) {
	s.cur.outIdx = s.nextOut
	s.nextOut++
	s.cur.itemID = s.itemID(prefix, s.cur.outIdx)
	s.cur.ref = appendItemRef(nil, s.cur.itemID, s.cur.outIdx, 0, false)
}

// emitDelta emits the delta event of the current block for raw, a JSON string. It is the
// hot path, written for the interpreter (each interpreted call or statement costs ~1 µs
// under Yaegi): only compiled calls on the common path, locals rather than repeated
// selectors, and a handful of appends of bytes prepared when the block started. Invalid UTF-8 (which encoding/json accepts) is re-encoded, so the output is
// valid for strict decoders too.
func (s *Stream) emitDelta(raw json.RawMessage) {
	if len(raw) < 3 || raw[0] != '"' {
		return // absent, not a string, or ""
	}
	if !utf8.Valid(raw) {
		raw = stringBody(raw)
		if len(raw) == 0 {
			return
		}
		raw = append(append([]byte{'"'}, raw...), '"')
	}
	inner := raw[1 : len(raw)-1]
	c := &s.cur
	if c.kind != blockTool {
		s.semantic = true
	}
	if c.kind == blockThinking && !c.partOpen {
		c.partOpen = true
		s.summaryPartEvent("response.reasoning_summary_part.added", false)
	}
	c.text = append(c.text, inner...)
	out := append(s.out, c.deltaPrefix...)
	out = strconv.AppendInt(out, s.seq, 10)
	s.seq++
	out = append(out, c.ref...)
	out = append(out, deltaKey...)
	out = append(out, inner...)
	s.out = append(out, c.deltaTail...)
}

// closeBlock ends the current block: a text part stays in the open message, a reasoning or
// function_call item is done.
func (s *Stream) closeBlock() { s.closeBlockAs(statusCompleted) }

// closeBlockAs ends the current block, a function_call item with the given status
// ("incomplete" when the stream stopped inside it).
func (s *Stream) closeBlockAs(status string) {
	switch s.cur.kind {
	case blockIsText:
		part := appendTextPart(nil, s.cur.text)
		s.textDone()
		s.contentPartDone(part)
		s.msg.parts = append(s.msg.parts, part)
	case blockThinking:
		if s.cur.partOpen {
			s.summaryTextDone()
			s.summaryPartEvent("response.reasoning_summary_part.done", true)
		}
		s.itemDone(s.reasoningItem())
	case blockTool:
		if len(s.cur.text) == 0 {
			s.cur.text = append(s.cur.text, "{}"...)
		}
		s.argumentsDone()
		s.itemDone(s.functionCallItem(status))
	case blockCustom:
		s.itemDone(s.customCallItem(status))
	case blockRedacted:
		s.itemDone(s.reasoningItem())
	case blockSearch:
		s.itemDone(s.webSearchItem(status))
	}
	s.cur.active = false
}

// openMessage opens an assistant message item unless one is open.
func (s *Stream) openMessage() {
	if s.msg.open {
		return
	}
	s.msg = convMessage{open: true, outIdx: s.nextOut, id: s.itemID("msg_", s.nextOut)}
	s.nextOut++
	s.itemAdded(s.messageItem("in_progress"), s.msg.outIdx)
}

func (s *Stream) closeMessage() { s.closeMessageAs(statusCompleted) }

func (s *Stream) closeMessageAs(status string) {
	if !s.msg.open {
		return
	}
	s.msg.open = false
	s.itemDoneAt(s.messageItem(status), s.msg.outIdx)
	s.msg.parts = nil
}

// complete ends a stream that finished (message_stop, or max_tokens without it).
// Items still open end with the response's status: cut short, they are incomplete.
func (s *Stream) complete() {
	s.start()
	status, typ := statusCompleted, "response.completed"
	if incompleteReason(s.stop) != "" {
		status, typ = statusIncomplete, "response.incomplete"
	}
	if s.cur.active {
		s.closeBlockAs(status)
	}
	s.closeMessageAs(status)
	s.status = status
	s.responseEvent(typ, status)
}

// failWith ends the response with response.failed, unless it already ended. Items still
// open are not finished: the output lists the done ones.
func (s *Stream) failWith(typ, msg string, upstream bool) {
	if s.status != "" {
		return
	}
	s.start()
	s.status = statusFailed
	s.errCode = wire.ResponsesErrorCode(typ)
	s.errMsg = msg
	s.upErr = upstream
	s.responseEvent("response.failed", statusFailed)
}

// incompleteReason maps a stop_reason that cut the answer short to incomplete_details.reason.
func incompleteReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "max_output_tokens"
	case "refusal":
		return "content_filter"
	}
	return ""
}

// stringBody returns the inside of a JSON string literal taken from a decoded event, or
// nil. Invalid UTF-8 (which encoding/json accepts) is re-encoded, so the output is valid
// for strict decoders too.
func stringBody(raw json.RawMessage) []byte {
	if len(raw) < 3 || raw[0] != '"' {
		return nil
	}
	if !utf8.Valid(raw) {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return nil
		}
		raw = appendJSONString(nil, str)
	}
	return raw[1 : len(raw)-1]
}
