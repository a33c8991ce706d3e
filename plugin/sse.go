package plugin

import (
	"bytes"
	"encoding/json"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// SSE framing (where events end, what they are called) and the Chat chunk classes of the
// commit point (sse_relay.go, streamend.go).

// eventBoundary returns the index just past the first blank line in b ("\n\n" or
// "\n\r\n"), or -1.
func eventBoundary(b []byte) int {
	i := bytes.Index(b, jsonsse.BlankLF)
	j := bytes.Index(b, jsonsse.BlankCRLF)
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
	if i := bytes.LastIndex(b, jsonsse.BlankLF); i >= 0 {
		end = i + 2
	}
	if j := bytes.LastIndex(b, jsonsse.BlankCRLF); j >= 0 && j+3 > end {
		end = j + 3
	}
	return end
}

var (
	doneData = []byte("[DONE]")
	typeJSON = []byte(`{"type":"`)
	errJSON  = []byte(`{"error"`)
)

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

type chatChunkProbe struct {
	Choices []struct {
		Delta        map[string]json.RawMessage `json:"delta"`
		FinishReason *string                    `json:"finish_reason"`
	} `json:"choices"`
	Error json.RawMessage `json:"error"`
	Usage json.RawMessage `json:"usage"`
}

// chatChunkKind classifies a Chat Completions chunk before the commit point: an error
// chunk, or one that carries no output (a role-only first chunk, a chunk without choices
// and usage), or output.
func chatChunkKind(data []byte) int {
	if len(data) == 0 || data[0] != '{' {
		return eventOutput
	}
	var c chatChunkProbe
	if err := json.Unmarshal(data, &c); err != nil {
		return eventOutput
	}
	if !jsonsse.IsNull(c.Error) {
		return eventError
	}
	if !jsonsse.IsNull(c.Usage) {
		return eventOutput
	}
	for i := 0; i < len(c.Choices); i++ {
		ch := c.Choices[i]
		if ch.FinishReason != nil {
			return eventOutput
		}
		for k, v := range ch.Delta {
			if k == "role" {
				continue
			}
			s := string(v)
			if s == "null" || s == `""` || s == "[]" {
				continue
			}
			return eventOutput
		}
	}
	return eventHeld
}

// lastEvent returns the last event block of b, which ends with a blank line.
func lastEvent(b []byte) []byte {
	body := bytes.TrimRight(b, "\r\n")
	if end := lastEventBoundary(body); end > 0 {
		return body[end:]
	}
	return body
}
