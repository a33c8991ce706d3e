package fakeupstream

import "net/http"

// OpenAI Responses API objects, as api.openai.com sends them
// (https://platform.openai.com/docs/api-reference/responses).

type respObject struct {
	ID                 string         `json:"id"`
	Object             string         `json:"object"`
	CreatedAt          int64          `json:"created_at"`
	Status             string         `json:"status"`
	Background         bool           `json:"background"`
	Error              *struct{}      `json:"error"`
	IncompleteDetails  *struct{}      `json:"incomplete_details"`
	Instructions       *string        `json:"instructions"`
	MaxOutputTokens    *int           `json:"max_output_tokens"`
	Model              string         `json:"model"`
	Output             []respItem     `json:"output"`
	ParallelToolCalls  bool           `json:"parallel_tool_calls"`
	PreviousResponseID *string        `json:"previous_response_id"`
	Reasoning          respReasoning  `json:"reasoning"`
	ServiceTier        string         `json:"service_tier"`
	Store              bool           `json:"store"`
	Temperature        float64        `json:"temperature"`
	Text               respText       `json:"text"`
	ToolChoice         string         `json:"tool_choice"`
	Tools              []struct{}     `json:"tools"`
	TopP               float64        `json:"top_p"`
	Truncation         string         `json:"truncation"`
	Usage              *respUsage     `json:"usage"`
	User               *string        `json:"user"`
	Metadata           map[string]any `json:"metadata"`
}

type respReasoning struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

type respText struct {
	Format struct {
		Type string `json:"type"`
	} `json:"format"`
	Verbosity string `json:"verbosity"`
}

type respItem struct {
	ID      string     `json:"id"`
	Type    string     `json:"type"`
	Status  string     `json:"status"`
	Role    string     `json:"role"`
	Content []respPart `json:"content"`
}

type respPart struct {
	Type        string     `json:"type"`
	Text        string     `json:"text"`
	Annotations []struct{} `json:"annotations"`
	Logprobs    []struct{} `json:"logprobs"`
}

type respUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

func (g *generation) respUsage() *respUsage {
	u := &respUsage{InputTokens: g.usage.InputTokens, OutputTokens: g.usage.OutputTokens,
		TotalTokens: g.usage.InputTokens + g.usage.OutputTokens}
	u.InputTokensDetails.CachedTokens = g.usage.CachedTokens
	u.OutputTokensDetails.ReasoningTokens = g.usage.ReasoningTokens
	return u
}

func (g *generation) outputPart(text string) respPart {
	return respPart{Type: "output_text", Text: text, Annotations: []struct{}{}, Logprobs: []struct{}{}}
}

func (g *generation) outputItem(status string, parts []respPart) respItem {
	return respItem{ID: "msg_" + g.itemID, Type: "message", Status: status, Role: "assistant", Content: parts}
}

// response renders the response object; finished adds output and usage.
func (g *generation) response(status string, finished bool) respObject {
	r := respObject{
		ID: "resp_" + g.id, Object: "response", CreatedAt: g.created, Status: status,
		Model: g.model, Output: []respItem{}, ParallelToolCalls: true, ServiceTier: "default",
		Store: true, Temperature: 1, ToolChoice: "auto", Tools: []struct{}{}, TopP: 1,
		Truncation: "disabled", Metadata: map[string]any{},
	}
	r.Text.Format.Type = "text"
	r.Text.Verbosity = "medium"
	if finished {
		r.Output = []respItem{g.outputItem("completed", []respPart{g.outputPart(g.text)})}
		r.Usage = g.respUsage()
	}
	return r
}

type respEventResponse struct {
	Type           string     `json:"type"`
	SequenceNumber int        `json:"sequence_number"`
	Response       respObject `json:"response"`
}

type respEventItem struct {
	Type           string   `json:"type"`
	SequenceNumber int      `json:"sequence_number"`
	OutputIndex    int      `json:"output_index"`
	Item           respItem `json:"item"`
}

type respEventPart struct {
	Type           string   `json:"type"`
	SequenceNumber int      `json:"sequence_number"`
	ItemID         string   `json:"item_id"`
	OutputIndex    int      `json:"output_index"`
	ContentIndex   int      `json:"content_index"`
	Part           respPart `json:"part"`
}

type respEventDelta struct {
	Type           string     `json:"type"`
	SequenceNumber int        `json:"sequence_number"`
	ItemID         string     `json:"item_id"`
	OutputIndex    int        `json:"output_index"`
	ContentIndex   int        `json:"content_index"`
	Delta          string     `json:"delta"`
	Logprobs       []struct{} `json:"logprobs"`
}

type respEventTextDone struct {
	Type           string     `json:"type"`
	SequenceNumber int        `json:"sequence_number"`
	ItemID         string     `json:"item_id"`
	OutputIndex    int        `json:"output_index"`
	ContentIndex   int        `json:"content_index"`
	Text           string     `json:"text"`
	Logprobs       []struct{} `json:"logprobs"`
}

// streamResponses sends the Responses API event sequence of one text
// answer: created, in_progress, output_item.added, content_part.added,
// output_text.delta…, output_text.done, content_part.done,
// output_item.done, completed.
func (s *Server) streamResponses(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation) {
	st := s.startStream(w, r, sc, status)
	itemID := "msg_" + g.itemID
	next := func() int { n := st.seq; st.seq++; return n }
	send := func(typ string, v any) bool { return st.event(typ, v) }

	if !send("response.created", respEventResponse{"response.created", next(), g.response("in_progress", false)}) ||
		!send("response.in_progress", respEventResponse{"response.in_progress", next(), g.response("in_progress", false)}) ||
		!send("response.output_item.added", respEventItem{"response.output_item.added", next(), 0, g.outputItem("in_progress", []respPart{})}) ||
		!send("response.content_part.added", respEventPart{"response.content_part.added", next(), itemID, 0, 0, g.outputPart("")}) {
		return
	}
	for _, p := range g.pieces {
		if !send("response.output_text.delta", respEventDelta{"response.output_text.delta", next(), itemID, 0, 0, p, []struct{}{}}) {
			return
		}
	}
	part := g.outputPart(g.text)
	_ = send("response.output_text.done", respEventTextDone{"response.output_text.done", next(), itemID, 0, 0, g.text, []struct{}{}}) &&
		send("response.content_part.done", respEventPart{"response.content_part.done", next(), itemID, 0, 0, part}) &&
		send("response.output_item.done", respEventItem{"response.output_item.done", next(), 0, g.outputItem("completed", []respPart{part})}) &&
		send("response.completed", respEventResponse{"response.completed", next(), g.response("completed", true)})
}
