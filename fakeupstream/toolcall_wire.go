package fakeupstream

import (
	"encoding/json"
	"net/http"
)

// The tool-call answers of a Script with ToolCall, in each API's wire format. The types
// embed the text answers' objects and replace their content fields (encoding/json takes
// the shallower field of one name).

// respondToolCall answers with the script's tool call in API a's shape.
func (s *Server) respondToolCall(w http.ResponseWriter, r *http.Request, a api, sc Script, status int, g *generation, req requestFields) {
	tc := *sc.ToolCall
	switch {
	case a == apiResponses && tc.Custom && req.Stream:
		s.streamResponsesCustomCall(w, r, sc, status, g, tc)
	case a == apiResponses && tc.Custom:
		s.writeResponsesCustomCall(w, r, sc, status, g, tc)
	case a == apiResponses && req.Stream:
		s.streamResponsesToolCall(w, r, sc, status, g, tc)
	case a == apiResponses:
		out := respToolObject{respObject: g.response("completed", true), Output: []respFunctionCall{g.functionCall(tc, "completed", tc.toolInput())}}
		s.writeJSON(w, r, sc, status, out)
	case a == apiChat && req.Stream:
		s.streamChatToolCall(w, r, sc, status, g, tc, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
	case a == apiChat:
		s.writeJSON(w, r, sc, status, g.chatToolCompletion(tc))
	case req.Stream:
		s.streamMessagesToolCall(w, r, sc, status, g, tc)
	default:
		s.writeJSON(w, r, sc, status, g.toolMessage(tc))
	}
}

// --- Responses: a function_call output item ---

type respFunctionCall struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

type respToolObject struct {
	respObject
	Output []respFunctionCall `json:"output"`
}

func (g *generation) callID(tc ToolCall, prefix string) string {
	if tc.ID != "" {
		return tc.ID
	}
	return prefix + g.itemID
}

func (g *generation) functionCall(tc ToolCall, status, args string) respFunctionCall {
	return respFunctionCall{ID: "fc_" + g.itemID, Type: "function_call", Status: status, Arguments: args,
		CallID: g.callID(tc, "call_"), Name: tc.Name, Namespace: tc.Namespace}
}

type respEventCallItem struct {
	Type           string           `json:"type"`
	SequenceNumber int              `json:"sequence_number"`
	OutputIndex    int              `json:"output_index"`
	Item           respFunctionCall `json:"item"`
}

type respEventArgs struct {
	Type           string `json:"type"`
	SequenceNumber int    `json:"sequence_number"`
	ItemID         string `json:"item_id"`
	OutputIndex    int    `json:"output_index"`
	Delta          string `json:"delta,omitempty"`
	Arguments      string `json:"arguments,omitempty"`
}

type respEventToolResponse struct {
	Type           string         `json:"type"`
	SequenceNumber int            `json:"sequence_number"`
	Response       respToolObject `json:"response"`
}

// streamResponsesToolCall sends created, in_progress, output_item.added (the call with
// empty arguments), function_call_arguments.delta…, function_call_arguments.done,
// output_item.done, completed.
func (s *Server) streamResponsesToolCall(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation, tc ToolCall) {
	st := s.startStream(w, r, sc, status)
	args := tc.toolInput()
	itemID := "fc_" + g.itemID
	next := func() int { n := st.seq; st.seq++; return n }
	if !st.event("response.created", respEventResponse{"response.created", next(), g.response("in_progress", false)}) ||
		!st.event("response.in_progress", respEventResponse{"response.in_progress", next(), g.response("in_progress", false)}) ||
		!st.event("response.output_item.added", respEventCallItem{"response.output_item.added", next(), 0, g.functionCall(tc, "in_progress", "")}) {
		return
	}
	for _, p := range inputPieces(args) {
		if !st.event("response.function_call_arguments.delta", respEventArgs{Type: "response.function_call_arguments.delta", SequenceNumber: next(), ItemID: itemID, Delta: p}) {
			return
		}
	}
	done := g.functionCall(tc, "completed", args)
	final := respToolObject{respObject: g.response("completed", true), Output: []respFunctionCall{done}}
	_ = st.event("response.function_call_arguments.done", respEventArgs{Type: "response.function_call_arguments.done", SequenceNumber: next(), ItemID: itemID, Arguments: args}) &&
		st.event("response.output_item.done", respEventCallItem{"response.output_item.done", next(), 0, done}) &&
		st.event("response.completed", respEventToolResponse{"response.completed", next(), final})
}

// --- Chat Completions: a tool_calls entry, finish_reason tool_calls ---

type chatToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatToolMessage struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content"`
	ToolCalls []chatToolCall `json:"tool_calls,omitempty"`
}

type chatToolChoice struct {
	Index        int              `json:"index"`
	Message      *chatToolMessage `json:"message,omitempty"`
	Delta        *chatToolMessage `json:"delta,omitempty"`
	Logprobs     *struct{}        `json:"logprobs"`
	FinishReason *string          `json:"finish_reason"`
}

type chatToolCompletion struct {
	chatCompletion
	Choices []chatToolChoice `json:"choices"`
}

func (g *generation) chatCall(tc ToolCall, args string, first bool, index *int) chatToolCall {
	c := chatToolCall{Index: index}
	c.Function.Arguments = args
	if first {
		c.ID, c.Type, c.Function.Name = g.callID(tc, "call_"), "function", tc.Name
	}
	return c
}

func (g *generation) chatToolCompletion(tc ToolCall) chatToolCompletion {
	finish := "tool_calls"
	c := chatToolCompletion{chatCompletion: g.chatCompletion()}
	c.Choices = []chatToolChoice{{Message: &chatToolMessage{Role: "assistant",
		ToolCalls: []chatToolCall{g.chatCall(tc, tc.toolInput(), true, nil)}}, FinishReason: &finish}}
	return c
}

// streamChatToolCall sends the call's id and name with empty arguments, the argument
// fragments, finish_reason tool_calls, the usage chunk (with include_usage), [DONE].
func (s *Server) streamChatToolCall(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation, tc ToolCall, includeUsage bool) {
	st := s.startStream(w, r, sc, status)
	zero := 0
	chunk := func(d chatToolMessage, finish *string) chatToolCompletion {
		c := chatToolCompletion{chatCompletion: g.chatBase("chat.completion.chunk")}
		c.Choices = []chatToolChoice{{Delta: &d, FinishReason: finish}}
		return c
	}
	if !st.data(chunk(chatToolMessage{Role: "assistant", ToolCalls: []chatToolCall{g.chatCall(tc, "", true, &zero)}}, nil)) {
		return
	}
	for _, p := range inputPieces(tc.toolInput()) {
		if !st.data(chunk(chatToolMessage{ToolCalls: []chatToolCall{g.chatCall(tc, p, false, &zero)}}, nil)) {
			return
		}
	}
	finish := "tool_calls"
	if !st.data(chunk(chatToolMessage{}, &finish)) {
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

// --- Messages: a tool_use block, stop_reason tool_use ---

type anthToolUse struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

type anthToolMessage struct {
	anthMessage
	Content []anthToolUse `json:"content"`
}

func (g *generation) toolUse(tc ToolCall, input string) anthToolUse {
	return anthToolUse{Type: "tool_use", ID: g.callID(tc, "toolu_"), Name: tc.Name, Input: json.RawMessage(input)}
}

func (g *generation) toolMessage(tc ToolCall) anthToolMessage {
	m := anthToolMessage{anthMessage: g.message(), Content: []anthToolUse{g.toolUse(tc, tc.toolInput())}}
	stop := "tool_use"
	m.StopReason = &stop
	return m
}

type anthToolBlockStart struct {
	Type         string      `json:"type"`
	Index        int         `json:"index"`
	ContentBlock anthToolUse `json:"content_block"`
}

type anthInputDelta struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	Delta struct {
		Type        string `json:"type"`
		PartialJSON string `json:"partial_json"`
	} `json:"delta"`
}

// streamMessagesToolCall sends message_start, content_block_start (tool_use with empty
// input), input_json_delta…, content_block_stop, message_delta (stop_reason tool_use),
// message_stop.
func (s *Server) streamMessagesToolCall(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation, tc ToolCall) {
	st := s.startStream(w, r, sc, status)
	start := g.message()
	start.Content = []anthBlock{}
	start.StopReason = nil
	start.Usage = g.anthUsage(1)
	if !st.event("message_start", anthMessageStart{Type: "message_start", Message: start}) ||
		!st.event("content_block_start", anthToolBlockStart{Type: "content_block_start", ContentBlock: g.toolUse(tc, "{}")}) {
		return
	}
	for _, p := range inputPieces(tc.toolInput()) {
		d := anthInputDelta{Type: "content_block_delta"}
		d.Delta.Type = "input_json_delta"
		d.Delta.PartialJSON = p
		if !st.event("content_block_delta", d) {
			return
		}
	}
	md := anthMessageDelta{Type: "message_delta"}
	md.Delta.StopReason = "tool_use"
	md.Usage.OutputTokens = g.usage.OutputTokens
	_ = st.event("content_block_stop", anthIndexed{Type: "content_block_stop"}) &&
		st.event("message_delta", md) &&
		st.event("message_stop", anthType{Type: "message_stop"})
}
