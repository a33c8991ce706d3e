package fakeupstream

import "net/http"

// OpenAI Chat Completions objects
// (https://platform.openai.com/docs/api-reference/chat).

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             *chatUsage   `json:"usage,omitempty"`
	ServiceTier       string       `json:"service_tier"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatMessage `json:"delta,omitempty"`
	Logprobs     *struct{}    `json:"logprobs"`
	FinishReason *string      `json:"finish_reason"`
}

type chatMessage struct {
	Role        string      `json:"role,omitempty"`
	Content     *string     `json:"content,omitempty"`
	Refusal     *string     `json:"refusal,omitempty"`
	Annotations *[]struct{} `json:"annotations,omitempty"`
}

type chatUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
		AudioTokens  int `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int `json:"reasoning_tokens"`
		AudioTokens              int `json:"audio_tokens"`
		AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

const chatFingerprint = "fp_fakeupstream"

func (g *generation) chatUsage() *chatUsage {
	u := &chatUsage{PromptTokens: g.usage.InputTokens, CompletionTokens: g.usage.OutputTokens,
		TotalTokens: g.usage.InputTokens + g.usage.OutputTokens}
	u.PromptTokensDetails.CachedTokens = g.usage.CachedTokens
	u.CompletionTokensDetails.ReasoningTokens = g.usage.ReasoningTokens
	return u
}

func (g *generation) chatBase(object string) chatCompletion {
	return chatCompletion{ID: "chatcmpl-" + g.id, Object: object, Created: g.created, Model: g.model,
		ServiceTier: "default", SystemFingerprint: chatFingerprint}
}

func (g *generation) chatCompletion() chatCompletion {
	c := g.chatBase("chat.completion")
	stop := "stop"
	text := g.text
	c.Choices = []chatChoice{{
		Message:      &chatMessage{Role: "assistant", Content: &text, Annotations: &[]struct{}{}},
		FinishReason: &stop,
	}}
	c.Usage = g.chatUsage()
	return c
}

// streamChat sends chunks: the role, the content deltas, the finish reason,
// then (only with stream_options.include_usage) a usage chunk with no
// choices, then [DONE].
func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation, includeUsage bool) {
	st := s.startStream(w, r, sc, status)
	chunk := func(delta chatMessage, finish *string) chatCompletion {
		c := g.chatBase("chat.completion.chunk")
		d := delta
		c.Choices = []chatChoice{{Delta: &d, FinishReason: finish}}
		return c
	}
	empty := ""
	if !st.data(chunk(chatMessage{Role: "assistant", Content: &empty}, nil)) {
		return
	}
	for _, p := range g.pieces {
		piece := p
		if !st.data(chunk(chatMessage{Content: &piece}, nil)) {
			return
		}
	}
	stop := "stop"
	if !st.data(chunk(chatMessage{}, &stop)) {
		return
	}
	if includeUsage {
		c := g.chatBase("chat.completion.chunk")
		c.Choices = []chatChoice{}
		c.Usage = g.chatUsage()
		if !st.data(c) {
			return
		}
	}
	_ = st.send([]byte("data: [DONE]\n\n"))
}
