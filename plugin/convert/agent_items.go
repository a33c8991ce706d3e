package convert

// The output items of the agents' tools (agents.go), rendered like the others in
// response.go: a custom tool's call and a server web search.

import "encoding/json"

// customCallItem renders the current custom tool's call: its input is the tool_use's one
// string, unwrapped; in progress, "".
func (s *Stream) customCallItem(status string) []byte {
	b := make([]byte, 0, 128+len(s.cur.text))
	b = append(b, `{"id":"`...)
	b = append(b, s.cur.itemID...)
	b = append(b, `","type":"custom_tool_call","status":"`...)
	b = append(b, status...)
	b = append(b, `","call_id":`...)
	b = append(b, s.cur.callID...)
	b = append(b, `,"name":`...)
	b = append(b, s.cur.name...)
	if s.cur.namespace != nil {
		b = append(b, `,"namespace":`...)
		b = append(b, s.cur.namespace...)
	}
	b = append(b, `,"input":"`...)
	if status != "in_progress" {
		b = append(b, customInputText(s.cur.text)...)
	}
	return append(b, `"}`...)
}

// customInputText returns the inside of the JSON string of a custom call's input, from the
// tool_use input JSON (the inside of a JSON string literal): its "input" string, or the
// whole input when the model sent another shape.
func customInputText(text []byte) []byte {
	var obj string
	if json.Unmarshal(append(append([]byte{'"'}, text...), '"'), &obj) != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(obj), &m) == nil {
		if raw, ok := m[customInputKey]; ok && len(raw) > 0 && raw[0] == '"' {
			return stringBody(raw)
		}
	}
	return stringBody(appendJSONString(nil, obj))
}

// webSearchItem renders the current server web search as a web_search_call item; its
// query is read from the tool input once the block ended.
func (s *Stream) webSearchItem(status string) []byte {
	b := make([]byte, 0, 96+len(s.cur.text))
	b = append(b, `{"id":"`...)
	b = append(b, s.cur.itemID...)
	b = append(b, `","type":"web_search_call","status":"`...)
	b = append(b, status...)
	b = append(b, '"')
	var q struct {
		Query string `json:"query"`
	}
	if status != "in_progress" {
		var obj string
		if json.Unmarshal(append(append([]byte{'"'}, s.cur.text...), '"'), &obj) == nil {
			_ = json.Unmarshal([]byte(obj), &q)
		}
	}
	b = append(b, `,"action":{"type":"search","query":`...)
	b = appendJSONString(b, q.Query)
	return append(b, "}}"...)
}
