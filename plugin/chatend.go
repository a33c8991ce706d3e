package plugin

import (
	"bytes"
	"encoding/json"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// The Chat Completions side of a stream's end (streamend.go): finish_reason, error chunks
// and the usage chunk a client did not ask for.

// chatEnd follows what a relayed Chat Completions stream delivered, batch by batch, with a
// few compiled searches per batch and no decode: whether its last finish_reason was set,
// whether an error chunk came (it may be followed by [DONE]), and, when the plugin forced
// include_usage on, the usage chunk to keep from the client.
type chatEnd struct {
	chat      bool // the stream is a Chat Completions stream
	stripping bool // the client did not ask for the usage chunk
	finished  bool // the last finish_reason seen is not null
	stripped  bool // the usage chunk was taken out
	errEvent  []byte
}

func newChatEnd(x *exchange) *chatEnd {
	chat := x.path == pathChat
	return &chatEnd{chat: chat, stripping: chat && x.info.forceIncludeUsage}
}

// observeChatEnd reads one batch of complete events as the upstream sent them. It and
// chatForClient are plain functions: they run per read, where an interpreted method call
// costs about 5x a function call under Yaegi (docs/yaegi.md).
func observeChatEnd(c *chatEnd, out []byte) {
	if !c.chat {
		return
	}
	if i := bytes.LastIndex(out, finishKey); i >= 0 {
		c.finished = !nullAfterKey(out[i+len(finishKey):])
	}
	if c.errEvent == nil {
		if i := bytes.Index(out, errJSON); i >= 0 {
			if ev := eventAt(out, i); terminalKind(ev) == endError {
				c.errEvent = append([]byte(nil), ev...)
			}
		}
	}
}

// chatForClient returns the batch the client gets: out, or a copy without the usage chunk
// (`"choices":[]` with a usage) when the client did not ask for it. The usage chunk is the
// last of a stream's chunks carrying "usage", so one search from the end finds it.
func chatForClient(c *chatEnd, out []byte) []byte {
	if !c.stripping || c.stripped {
		return out
	}
	i := bytes.LastIndex(out, usageKey)
	if i < 0 || nullAfterKey(out[i+len(usageKey):]) {
		return out
	}
	start, end := eventSpan(out, i)
	if !isUsageOnlyChunk(out[start:end]) {
		return out
	}
	c.stripped = true
	w := make([]byte, 0, len(out)-(end-start))
	w = append(w, out[:start]...)
	return append(w, out[end:]...)
}

// isUsageOnlyChunk reports whether an event is Chat's usage chunk: no choices, a usage.
func isUsageOnlyChunk(ev []byte) bool {
	_, data := jsonsse.EventFields(ev)
	if !bytes.Contains(data, choicesKey) {
		return false
	}
	var c chatChunkProbe
	if json.Unmarshal(data, &c) != nil {
		return false
	}
	return len(c.Choices) == 0 && !jsonsse.IsNull(c.Usage) && jsonsse.IsNull(c.Error)
}

// eventSpan returns the bounds of the event of b that holds index i.
func eventSpan(b []byte, i int) (int, int) {
	start := lastEventBoundary(b[:i])
	if start < 0 {
		start = 0
	}
	end := len(b)
	if j := eventBoundary(b[i:]); j >= 0 {
		end = i + j
	}
	return start, end
}

// eventAt returns the event of b that holds index i.
func eventAt(b []byte, i int) []byte {
	start, end := eventSpan(b, i)
	return b[start:end]
}

// complete reports whether a Chat stream that ended without [DONE] delivered everything:
// its finish_reason and its usage chunk (include_usage is always on upstream).
func (c *chatEnd) complete(usageComplete bool) bool {
	return c.chat && c.finished && usageComplete && c.errEvent == nil
}

// isWholeChatEvent reports whether the last bytes of a Chat stream, without their blank
// line, are a whole chunk: a cut mid-chunk leaves JSON that does not parse.
func isWholeChatEvent(ev []byte) bool {
	_, data := jsonsse.EventFields(ev)
	return bytes.Equal(data, doneData) || (len(data) > 0 && data[0] == '{' && jsonValid(data))
}
