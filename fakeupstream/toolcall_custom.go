package fakeupstream

import "net/http"

// Custom tool calls (Responses): a ToolCall with Custom answers with a custom_tool_call
// item whose input is the raw text Input holds (a JSON string), the way OpenAI models call
// freeform tools such as Codex's apply_patch or its code-mode exec. Namespace names the
// namespace the tool was declared in, as function and custom calls of namespaced tools
// carry it. On Chat Completions and Messages a custom call is a plain call whose input is
// {"input": <text>}.

type respCustomCall struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Input     string `json:"input"`
}

type respCustomObject struct {
	respObject
	Output []respCustomCall `json:"output"`
}

type respEventCustomItem struct {
	Type           string         `json:"type"`
	SequenceNumber int            `json:"sequence_number"`
	OutputIndex    int            `json:"output_index"`
	Item           respCustomCall `json:"item"`
}

type respEventCustomInput struct {
	Type           string `json:"type"`
	SequenceNumber int    `json:"sequence_number"`
	ItemID         string `json:"item_id"`
	OutputIndex    int    `json:"output_index"`
	Delta          string `json:"delta,omitempty"`
	Input          string `json:"input,omitempty"`
}

func (g *generation) customCall(tc ToolCall, status, input string) respCustomCall {
	return respCustomCall{ID: "ctc_" + g.itemID, Type: "custom_tool_call", Status: status, CallID: g.callID(tc, "call_"),
		Name: tc.Name, Namespace: tc.Namespace, Input: input}
}

func (s *Server) writeResponsesCustomCall(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation, tc ToolCall) {
	out := respCustomObject{respObject: g.response("completed", true), Output: []respCustomCall{g.customCall(tc, "completed", tc.customInput())}}
	s.writeJSON(w, r, sc, status, out)
}

// streamResponsesCustomCall sends created, in_progress, output_item.added,
// custom_tool_call_input.delta…, custom_tool_call_input.done, output_item.done, completed.
func (s *Server) streamResponsesCustomCall(w http.ResponseWriter, r *http.Request, sc Script, status int, g *generation, tc ToolCall) {
	st := s.startStream(w, r, sc, status)
	input := tc.customInput()
	itemID := "ctc_" + g.itemID
	next := func() int { n := st.seq; st.seq++; return n }
	if !st.event("response.created", respEventResponse{"response.created", next(), g.response("in_progress", false)}) ||
		!st.event("response.in_progress", respEventResponse{"response.in_progress", next(), g.response("in_progress", false)}) ||
		!st.event("response.output_item.added", respEventCustomItem{"response.output_item.added", next(), 0, g.customCall(tc, "in_progress", "")}) {
		return
	}
	for _, p := range inputPieces(input) {
		if !st.event("response.custom_tool_call_input.delta", respEventCustomInput{Type: "response.custom_tool_call_input.delta", SequenceNumber: next(), ItemID: itemID, Delta: p}) {
			return
		}
	}
	done := g.customCall(tc, "completed", input)
	final := respCustomObject{respObject: g.response("completed", true), Output: []respCustomCall{done}}
	_ = st.event("response.custom_tool_call_input.done", respEventCustomInput{Type: "response.custom_tool_call_input.done", SequenceNumber: next(), ItemID: itemID, Input: input}) &&
		st.event("response.output_item.done", respEventCustomItem{"response.output_item.done", next(), 0, done}) &&
		st.event("response.completed", respEventCustomResponse{"response.completed", next(), final})
}

type respEventCustomResponse struct {
	Type           string           `json:"type"`
	SequenceNumber int              `json:"sequence_number"`
	Response       respCustomObject `json:"response"`
}
