package fakeupstream

import "net/http"

// Anthropic Messages objects (https://docs.anthropic.com/en/api/messages).

type anthMessage struct {
	ID           string      `json:"id"`
	Type         string      `json:"type"`
	Role         string      `json:"role"`
	Model        string      `json:"model"`
	Content      []anthBlock `json:"content"`
	StopReason   *string     `json:"stop_reason"`
	StopSequence *string     `json:"stop_sequence"`
	Usage        anthUsage   `json:"usage"`
}

type anthBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anthUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

func (g *generation) anthUsage(output int) anthUsage {
	return anthUsage{InputTokens: g.usage.anthropicInput(), CacheCreationInputTokens: g.usage.CacheCreationTokens,
		CacheReadInputTokens: g.usage.CachedTokens, OutputTokens: output}
}

func (g *generation) message() anthMessage {
	stop := "end_turn"
	return anthMessage{ID: "msg_" + g.id, Type: "message", Role: "assistant", Model: g.model,
		Content: []anthBlock{{Type: "text", Text: g.text}}, StopReason: &stop,
		Usage: g.anthUsage(g.usage.OutputTokens)}
}

type anthMessageStart struct {
	Type    string      `json:"type"`
	Message anthMessage `json:"message"`
}

type anthBlockStart struct {
	Type         string    `json:"type"`
	Index        int       `json:"index"`
	ContentBlock anthBlock `json:"content_block"`
}

type anthBlockDelta struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	Delta struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"delta"`
}

type anthIndexed struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
}

type anthMessageDelta struct {
	Type  string `json:"type"`
	Delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage struct {
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

type anthType struct {
	Type string `json:"type"`
}

// streamMessages sends message_start, content_block_start, ping,
// content_block_delta…, content_block_stop, message_delta (with the output
// usage), message_stop.
func (s *Server) streamMessages(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation) {
	st := s.startStream(w, r, sc, status)
	start := g.message()
	start.Content = []anthBlock{}
	start.StopReason = nil
	start.Usage = g.anthUsage(1)
	if !st.event("message_start", anthMessageStart{Type: "message_start", Message: start}) ||
		!st.event("content_block_start", anthBlockStart{Type: "content_block_start", ContentBlock: anthBlock{Type: "text"}}) ||
		!st.event("ping", anthType{Type: "ping"}) {
		return
	}
	for _, p := range g.pieces {
		d := anthBlockDelta{Type: "content_block_delta"}
		d.Delta.Type = "text_delta"
		d.Delta.Text = p
		if !st.event("content_block_delta", d) {
			return
		}
	}
	md := anthMessageDelta{Type: "message_delta"}
	md.Delta.StopReason = "end_turn"
	md.Usage.OutputTokens = g.usage.OutputTokens
	_ = st.event("content_block_stop", anthIndexed{Type: "content_block_stop"}) &&
		st.event("message_delta", md) &&
		st.event("message_stop", anthType{Type: "message_stop"})
}
