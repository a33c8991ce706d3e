package convert

// Rendering of the Responses events and objects of stream.go, by appending to one
// buffer. Every event carries its type first (so the core's eventType, plugin/sse.go, reads it), an
// increasing sequence_number, and the fields strict clients require even when zero or
// empty: output_index, content_index, summary_index, content: [], summary: [],
// arguments: "", annotations: [], logprobs: [] (the required fields as the official OpenAI
// Go SDK declares them: strict clients refuse an event without them).

import (
	"strconv"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// The delta events, prepared once: "event: <type>\ndata: {"type":"<type>","sequence_number":"
// before the number, and what follows the delta.
var (
	textDeltaPrefix      = deltaPrefixFor("response.output_text.delta")
	thinkingDeltaPrefix  = deltaPrefixFor("response.reasoning_summary_text.delta")
	argumentsDeltaPrefix = deltaPrefixFor("response.function_call_arguments.delta")
	deltaKey             = []byte(`,"delta":"`)
	textDeltaTail        = []byte("\",\"logprobs\":[]}\n\n")
	plainDeltaTail       = []byte("\"}\n\n")
)

func deltaPrefixFor(typ string) []byte {
	return []byte("event: " + typ + "\ndata: {\"type\":\"" + typ + "\",\"sequence_number\":")
}

// itemID returns the id of the item at outIdx: the response id's random part, with the
// item type's prefix (msg_, rs_, fc_) and the index.
func (s *Stream) itemID(prefix string, outIdx int) string {
	return prefix + s.itemBase + "_" + strconv.Itoa(outIdx)
}

// appendItemRef appends `,"item_id":…,"output_index":…` and, for text, content_index.
func appendItemRef(dst []byte, id string, outIdx, contentIdx int, withContent bool) []byte {
	dst = append(dst, `,"item_id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","output_index":`...)
	dst = strconv.AppendInt(dst, int64(outIdx), 10)
	if withContent {
		dst = append(dst, `,"content_index":`...)
		dst = strconv.AppendInt(dst, int64(contentIdx), 10)
	}
	return dst
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, err := jsonsse.Encode(s)
	if err != nil {
		return append(dst, `""`...)
	}
	return append(dst, b...)
}

// open starts an SSE event of type typ: its event line, and its data up to the
// sequence number. close ends it.
func (s *Stream) open(typ string) {
	s.out = append(s.out, "event: "...)
	s.out = append(s.out, typ...)
	s.out = append(s.out, "\ndata: {\"type\":\""...)
	s.out = append(s.out, typ...)
	s.out = append(s.out, `","sequence_number":`...)
	s.out = strconv.AppendInt(s.out, s.seq, 10)
	s.seq++
}

func (s *Stream) close() {
	s.out = append(s.out, "}\n\n"...)
}

// quoted appends `,"key":"<inner>"` for the inside of a JSON string literal.
func (s *Stream) quoted(key string, inner []byte) {
	s.out = append(s.out, ',', '"')
	s.out = append(s.out, key...)
	s.out = append(s.out, `":"`...)
	s.out = append(s.out, inner...)
	s.out = append(s.out, '"')
}

func (s *Stream) responseEvent(typ, status string) {
	s.open(typ)
	s.out = append(s.out, `,"response":`...)
	s.out = s.appendResponse(s.out, status)
	s.close()
}

func (s *Stream) itemAdded(item []byte, outIdx int) {
	s.open("response.output_item.added")
	s.out = append(s.out, `,"output_index":`...)
	s.out = strconv.AppendInt(s.out, int64(outIdx), 10)
	s.out = append(s.out, `,"item":`...)
	s.out = append(s.out, item...)
	s.close()
}

// outputItemAdded announces the current reasoning or function_call block's item.
func (s *Stream) outputItemAdded() {
	switch s.cur.kind {
	case blockTool:
		s.itemAdded(s.functionCallItem("in_progress"), s.cur.outIdx)
	case blockCustom:
		s.itemAdded(s.customCallItem("in_progress"), s.cur.outIdx)
	case blockSearch:
		s.itemAdded(s.webSearchItem("in_progress"), s.cur.outIdx)
	default:
		s.itemAdded(s.reasoningItem(), s.cur.outIdx)
	}
}

// itemDone emits output_item.done for the current block's item and keeps it for the
// response's output.
func (s *Stream) itemDone(item []byte) { s.itemDoneAt(item, s.cur.outIdx) }

// itemDoneAt emits output_item.done. Items end in output_index order (one block at a time,
// the message closed before the next item opens), so the output is kept by appending.
func (s *Stream) itemDoneAt(item []byte, outIdx int) {
	s.open("response.output_item.done")
	s.out = append(s.out, `,"output_index":`...)
	s.out = strconv.AppendInt(s.out, int64(outIdx), 10)
	s.out = append(s.out, `,"item":`...)
	s.out = append(s.out, item...)
	s.close()
	s.items = append(s.items, item)
}

func (s *Stream) contentPartAdded() {
	s.open("response.content_part.added")
	s.out = append(s.out, s.cur.ref...)
	s.out = append(s.out, `,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}`...)
	s.close()
}

func (s *Stream) textDone() {
	s.open("response.output_text.done")
	s.out = append(s.out, s.cur.ref...)
	s.quoted("text", s.cur.text)
	s.out = append(s.out, `,"logprobs":[]`...)
	s.close()
}

func (s *Stream) contentPartDone(part []byte) {
	s.open("response.content_part.done")
	s.out = append(s.out, s.cur.ref...)
	s.out = append(s.out, `,"part":`...)
	s.out = append(s.out, part...)
	s.close()
}

// summaryPartEvent announces (done false) or ends the reasoning item's one summary part.
func (s *Stream) summaryPartEvent(typ string, done bool) {
	s.open(typ)
	s.out = append(s.out, s.cur.ref...)
	s.out = append(s.out, `,"part":{"type":"summary_text","text":"`...)
	if done {
		s.out = append(s.out, s.cur.text...)
	}
	s.out = append(s.out, `"}`...)
	s.close()
}

func (s *Stream) summaryTextDone() {
	s.open("response.reasoning_summary_text.done")
	s.out = append(s.out, s.cur.ref...)
	s.quoted("text", s.cur.text)
	s.close()
}

func (s *Stream) argumentsDone() {
	s.open("response.function_call_arguments.done")
	s.out = append(s.out, s.cur.ref...)
	s.quoted("arguments", s.cur.text)
	s.close()
}

// appendTextPart renders an output_text part holding text (the inside of a JSON string).
func appendTextPart(dst, text []byte) []byte {
	dst = append(dst, `{"type":"output_text","annotations":[],"logprobs":[],"text":"`...)
	dst = append(dst, text...)
	return append(dst, `"}`...)
}

func (s *Stream) messageItem(status string) []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"id":"`...)
	b = append(b, s.msg.id...)
	b = append(b, `","type":"message","status":"`...)
	b = append(b, status...)
	b = append(b, `","role":"assistant","content":[`...)
	if status != "in_progress" {
		for i := 0; i < len(s.msg.parts); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, s.msg.parts[i]...)
		}
	}
	return append(b, "]}"...)
}

// reasoningItem renders the current thinking block's item: its summary is the thinking
// text once a part was announced, [] before.
func (s *Stream) reasoningItem() []byte {
	b := make([]byte, 0, 64+len(s.cur.text))
	b = append(b, `{"id":"`...)
	b = append(b, s.cur.itemID...)
	b = append(b, `","type":"reasoning","summary":[`...)
	if s.cur.partOpen {
		b = append(b, `{"type":"summary_text","text":"`...)
		b = append(b, s.cur.text...)
		b = append(b, `"}`...)
	}
	b = append(b, ']')
	if len(s.cur.sig) > len(thinkingSigPrefix) {
		b = append(b, `,"encrypted_content":"`...)
		b = append(b, s.cur.sig...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// functionCallItem renders the current tool_use block's item; in progress, its arguments
// are "".
func (s *Stream) functionCallItem(status string) []byte {
	b := make([]byte, 0, 128+len(s.cur.text))
	b = append(b, `{"id":"`...)
	b = append(b, s.cur.itemID...)
	b = append(b, `","type":"function_call","status":"`...)
	b = append(b, status...)
	b = append(b, `","arguments":"`...)
	if status != "in_progress" {
		b = append(b, s.cur.text...)
	}
	b = append(b, `","call_id":`...)
	b = append(b, s.cur.callID...)
	b = append(b, `,"name":`...)
	b = append(b, s.cur.name...)
	if s.cur.namespace != nil {
		b = append(b, `,"namespace":`...)
		b = append(b, s.cur.namespace...)
	}
	return append(b, '}')
}

// appendResponse renders the response object. Before the end its output is [] and its
// usage null; at the end it lists the done items.
func (s *Stream) appendResponse(dst []byte, status string) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, s.id...)
	dst = append(dst, `","object":"response","created_at":`...)
	dst = strconv.AppendInt(dst, s.createdAt, 10)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","error":`...)
	if status == statusFailed {
		dst = append(dst, `{"code":`...)
		dst = appendJSONString(dst, s.errCode)
		dst = append(dst, `,"message":`...)
		dst = appendJSONString(dst, s.errMsg)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"incomplete_details":`...)
	if status == statusIncomplete {
		dst = append(dst, `{"reason":"`...)
		dst = append(dst, incompleteReason(s.stop)...)
		dst = append(dst, `"}`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"model":`...)
	dst = append(dst, s.model...)
	dst = append(dst, `,"output":[`...)
	if status != "in_progress" {
		for i := 0; i < len(s.items); i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, s.items[i]...)
		}
	}
	dst = append(dst, `],"usage":`...)
	if status == "in_progress" || !s.usage.seen {
		return append(dst, "null}"...)
	}
	return append(s.appendUsage(dst), '}')
}

// appendUsage renders the usage as Responses clients read it: input_tokens includes the
// cache tokens (Anthropic's excludes them), cached_tokens are the cache reads.
func (s *Stream) appendUsage(dst []byte) []byte {
	u := s.usage
	input := u.input + u.cacheRead + u.cacheCreation
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, input, 10)
	dst = append(dst, `,"input_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.cacheRead, 10)
	dst = append(dst, `,"cache_write_tokens":`...)
	dst = strconv.AppendInt(dst, u.cacheCreation, 10)
	dst = append(dst, `},"output_tokens":`...)
	dst = strconv.AppendInt(dst, u.output, 10)
	dst = append(dst, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
	dst = strconv.AppendInt(dst, input+u.output, 10)
	return append(dst, '}')
}

// responseJSON returns the final response object of a non-streaming request (call finish
// first); its status is completed, incomplete or failed.
func (s *Stream) responseJSON() []byte {
	status := s.status
	if status == "" {
		status = "in_progress"
	}
	return s.appendResponse(make([]byte, 0, 256), status)
}

// anthropicUsage returns the merged usage in Anthropic's form (exclusive input tokens) for
// the usage report (usage_format "anthropic"), or nil when the upstream sent none.
func (s *Stream) anthropicUsage() []byte {
	if !s.usage.seen {
		return nil
	}
	u := s.usage
	b := make([]byte, 0, 128)
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, u.input, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, u.output, 10)
	b = append(b, `,"cache_creation_input_tokens":`...)
	b = strconv.AppendInt(b, u.cacheCreation, 10)
	b = append(b, `,"cache_read_input_tokens":`...)
	b = strconv.AppendInt(b, u.cacheRead, 10)
	return append(b, '}')
}
