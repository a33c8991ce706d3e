package plugin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// The commit point of a streamed reply (issue 3 §8). Until the first semantic output, the
// upstream headers and the events that commit nothing (comments, response.created,
// response.in_progress, empty output items, a role-only first chat chunk, Anthropic's
// message_start, ping and empty content_block_start) are held, so that a failure can still
// move the request to another account. From the first semantic output on, the account is
// never switched: a failure ends the stream with a terminal error in the client's protocol
// (writeStreamError), and a stream that ends without its terminal event gets one too.
//
// After the commit, only complete events (up to the last blank line) are passed on, so that
// an error frame never lands inside a half-sent event.

const (
	// maxHold bounds the bytes held before the commit point; past it the stream commits.
	maxHold = 1 << 20

	msgStreamCut     = "Upstream stream ended unexpectedly"
	msgStreamIdle    = "Upstream stream idle timeout"
	msgRequestTimout = "Request timed out"
)

// classStreamIncomplete: the upstream ended the body cleanly without a terminal event.
const classStreamIncomplete = "stream_incomplete"

// eventBoundary returns the index just past the first blank line in b ("\n\n" or
// "\n\r\n"), or -1.
func eventBoundary(b []byte) int {
	i := bytes.Index(b, lfLF)
	j := bytes.Index(b, lfCRLF)
	switch {
	case i < 0 && j < 0:
		return -1
	case j < 0 || (i >= 0 && i < j):
		return i + 2
	}
	return j + 3
}

// lastEventBoundary returns the index just past the last blank line in b, or -1.
func lastEventBoundary(b []byte) int {
	end := -1
	if i := bytes.LastIndex(b, lfLF); i >= 0 {
		end = i + 2
	}
	if j := bytes.LastIndex(b, lfCRLF); j >= 0 && j+3 > end {
		end = j + 3
	}
	return end
}

var (
	lfLF     = []byte("\n\n")
	lfCRLF   = []byte("\n\r\n")
	eventTag = []byte("event:")
	doneData = []byte("[DONE]")
	typeJSON = []byte(`{"type":"`)
	errJSON  = []byte(`{"error"`)
)

// sseFields returns the event name and the first data value of one SSE event block
// (either may be empty). Comment lines are skipped.
func sseFields(block []byte) (name, data []byte) {
	for len(block) > 0 {
		line := block
		rest := []byte(nil)
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, rest = block[:i], block[i+1:]
		}
		block = rest
		line = bytes.TrimRight(line, "\r")
		switch {
		case bytes.HasPrefix(line, eventTag):
			name = bytes.TrimSpace(line[len(eventTag):])
		case data == nil && bytes.HasPrefix(line, dataPrefix):
			data = bytes.TrimSpace(line[len(dataPrefix):])
		}
	}
	return name, data
}

// eventType is the event name, else the "type" the data starts with (OpenAI and Anthropic
// put it first), else "".
func eventType(name, data []byte) string {
	if len(name) > 0 {
		return string(name)
	}
	if bytes.HasPrefix(data, typeJSON) {
		rest := data[len(typeJSON):]
		if i := bytes.IndexByte(rest, '"'); i >= 0 {
			return string(rest[:i])
		}
	}
	return ""
}

// isTerminalEvent reports whether an event ends a stream: completion, failure or an error.
func isTerminalEvent(block []byte) bool {
	name, data := sseFields(block)
	switch eventType(name, data) {
	case "response.completed", "response.failed", "response.incomplete", "error", "message_stop":
		return true
	}
	return bytes.Equal(data, doneData) || bytes.HasPrefix(data, errJSON)
}

// commitsNothing reports whether an event may be held before the commit point.
func commitsNothing(block []byte) bool {
	name, data := sseFields(block)
	if len(name) == 0 && len(data) == 0 {
		return true // comments, empty blocks
	}
	switch eventType(name, data) {
	case "response.created", "response.in_progress", "response.queued",
		"response.output_item.added", "response.content_part.added",
		"message_start", "ping", "content_block_start":
		return true
	case "":
		return isEmptyChatChunk(data)
	}
	return false
}

type chatChunkProbe struct {
	Choices []struct {
		Delta        map[string]json.RawMessage `json:"delta"`
		FinishReason *string                    `json:"finish_reason"`
	} `json:"choices"`
	Error json.RawMessage `json:"error"`
	Usage json.RawMessage `json:"usage"`
}

// isEmptyChatChunk reports whether a Chat Completions chunk carries no output: a role-only
// first chunk, or a chunk without choices and usage.
func isEmptyChatChunk(data []byte) bool {
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	var c chatChunkProbe
	if err := json.Unmarshal(data, &c); err != nil {
		return false
	}
	if !isNullRaw(c.Error) || !isNullRaw(c.Usage) {
		return false
	}
	for i := 0; i < len(c.Choices); i++ {
		ch := c.Choices[i]
		if ch.FinishReason != nil {
			return false
		}
		for k, v := range ch.Delta {
			if k == "role" {
				continue
			}
			s := string(v)
			if s == "null" || s == `""` || s == "[]" {
				continue
			}
			return false
		}
	}
	return true
}

// relayStream relays an SSE reply with a commit point. It returns the failed attempt when
// the reply failed before the commit point, so that the caller fails over; nil when the
// exchange is answered (success, in-stream error or client gone).
func (x *exchange) relayStream(resp *http.Response, wd *watchdog) *failedAttempt {
	defer resp.Body.Close()
	wd.armIdle(x.idleTimeout())

	var flusher http.Flusher
	if f, ok := x.rw.(http.Flusher); ok {
		flusher = f
	}
	scan := newUsageScanner(usageFormatFor(x.path), true)
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp

	var pending []byte // bytes read and not yet written
	scanned := 0       // pre-commit: complete events of pending already classified
	committed := false
	// last is a copy of the last complete event passed on; whether it ends the stream is
	// only asked once the body ends, so that a read costs no event parsing (every stdlib
	// call from interpreted code costs about 1 µs of reflection).
	var last []byte
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			wd.progress()
			pending = append(pending, buf[:n]...)
			if !committed {
				for {
					end := eventBoundary(pending[scanned:])
					if end < 0 {
						break
					}
					ev := pending[scanned : scanned+end]
					scanned += end
					if !commitsNothing(ev) {
						committed = true
						break
					}
				}
				if !committed && len(pending) > maxHold {
					committed = true
				}
				if committed {
					wd.firstToken()
					x.firstByte = time.Now()
					x.commitHeaders(resp, true)
				}
			}
			if committed {
				cut := lastEventBoundary(pending)
				if len(pending) > maxCarry {
					cut = len(pending) // an event that never ends: pass it on as it comes
				}
				if cut > 0 {
					out := pending[:cut]
					if _, werr := x.rw.Write(out); werr != nil {
						x.status = statusClientClosed
						x.errorClass = classClientGone
						x.usage = scan.result()
						return nil
					}
					if flusher != nil {
						flusher.Flush()
					}
					scan.feed(out)
					last = append(last[:0], lastEvent(out)...)
					pending = append(pending[:0], pending[cut:]...)
				}
			}
		}
		if rerr != nil {
			return x.streamStopped(resp, wd, rerr, committed, isTerminalEvent(last), pending, scan)
		}
	}
}

// lastEvent returns the last event block of b, which ends with a blank line.
func lastEvent(b []byte) []byte {
	body := bytes.TrimRight(b, "\r\n")
	if end := lastEventBoundary(body); end > 0 {
		return body[end:]
	}
	return body
}

// streamStopped handles the end of an SSE body: rerr is io.EOF for a clean end.
func (x *exchange) streamStopped(resp *http.Response, wd *watchdog, rerr error, committed, terminal bool,
	pending []byte, scan *usageScanner) *failedAttempt {
	if x.clientGone() {
		x.status = statusClientClosed
		x.errorClass = classClientGone
		if committed {
			x.usage = scan.result()
		}
		return nil
	}
	class := classStreamCut
	if rerr == io.EOF {
		class = classStreamIncomplete
		// A last event without its blank line still counts when it is complete.
		if len(bytes.TrimSpace(pending)) > 0 && isTerminalEvent(lastEvent(pending)) {
			if !committed {
				wd.firstToken()
				x.firstByte = time.Now()
				x.commitHeaders(resp, true)
			}
			if _, err := x.rw.Write(pending); err == nil {
				scan.feed(pending)
			}
			if f, ok := x.rw.(http.Flusher); ok {
				f.Flush()
			}
			x.usage = scan.result()
			return nil
		}
	} else if c := wd.firedClass(); c != "" {
		class = c
	}
	if !committed {
		if class == classRequestTimeout {
			x.errorClass = class
			x.timedOut()
			return nil
		}
		x.markLastAttempt(class)
		x.heldUsage(scan, pending)
		return &failedAttempt{AccountID: x.grant.AccountID, ErrorClass: class}
	}
	x.usage = scan.result()
	if terminal && class == classStreamIncomplete {
		return nil // a complete stream; only a trailing partial line was dropped
	}
	x.errorClass = class
	x.markLastAttempt(class)
	msg := msgStreamCut
	switch class {
	case classStreamIdleTimeout:
		msg = msgStreamIdle
	case classRequestTimeout:
		msg = msgRequestTimout
	}
	writeStreamError(x.rw, x.path, x.info.model, typeUpstream, msg)
	return nil
}

// heldUsage records, on the current attempt, the usage the events held before the commit
// point announced (Anthropic's message_start carries the input tokens): the attempt fails
// over, but its account consumed them (docs/billing.md, "Ledger").
func (x *exchange) heldUsage(scan *usageScanner, held []byte) {
	if len(x.attempts) == 0 || len(held) == 0 {
		return
	}
	scan.feed(held)
	x.attempts[len(x.attempts)-1].Usage = rawJSON(scan.result())
}

// markLastAttempt records the error class of the failure of the current attempt.
func (x *exchange) markLastAttempt(class string) {
	if len(x.attempts) > 0 {
		x.attempts[len(x.attempts)-1].ErrorClass = class
	}
}

// timedOut answers a request whose overall deadline passed: 504 before anything was sent,
// else an in-stream error.
func (x *exchange) timedOut() {
	x.errorClass = classRequestTimeout
	if x.written && !x.keepAliveOnly {
		writeStreamError(x.rw, x.path, x.info.model, typeUpstream, msgRequestTimout)
		return
	}
	x.writeError(newClientError(http.StatusGatewayTimeout, typeUpstream, msgRequestTimout))
}
