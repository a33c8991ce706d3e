package plugin

// Tools and tool_choice of a Responses request → Anthropic Messages (sub2api-behaviour.md
// §7.1): function tools convert, other tool types are left out.

import (
	"encoding/json"
	"errors"
	"strconv"
)

// responsesTool is a Responses tool; only function tools are converted.
type responsesTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}

// responsesToolChoice is the object form of tool_choice: {type:function,name}, the legacy
// {type:function,function:{name}}, or {type:allowed_tools,mode}.
type responsesToolChoice struct {
	Type     string `json:"type"`
	Name     string `json:"name"`
	Mode     string `json:"mode"`
	Function *struct {
		Name string `json:"name"`
	} `json:"function"`
}

// convertTools converts function tools; other tool types (hosted tools, custom grammar
// tools) have no Anthropic counterpart the response conversion could map back, and are left
// out.
func convertTools(raw json.RawMessage) ([]messagesTool, error) {
	if isNullRaw(raw) {
		return nil, nil
	}
	var tools []responsesTool
	if raw[0] != '[' || json.Unmarshal(raw, &tools) != nil {
		return nil, errors.New("tools must be an array of tool objects")
	}
	var out []messagesTool
	for i := 0; i < len(tools); i++ {
		t := tools[i]
		if t.Type != "function" {
			continue
		}
		if t.Name == "" {
			return nil, errors.New("tools[" + strconv.Itoa(i) + "].name is required")
		}
		schema, err := objectSchema(t.Parameters)
		if err != nil {
			return nil, errors.New("tools[" + strconv.Itoa(i) + "].parameters " + err.Error())
		}
		out = append(out, messagesTool{Name: t.Name, Description: t.Description, InputSchema: schema})
	}
	return out, nil
}

// objectSchema returns a function's parameters as an Anthropic input_schema, which must be
// an object schema: absent parameters become an empty one, a missing type becomes "object".
func objectSchema(raw json.RawMessage) (json.RawMessage, error) {
	if isNullRaw(raw) {
		return emptyObjectSchema, nil
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, errors.New("must be a JSON Schema object")
	}
	typ, present := m["type"]
	if present && string(typ) == `"object"` {
		return raw, nil
	}
	if present {
		return nil, errors.New(`must have "type": "object"`)
	}
	m["type"] = json.RawMessage(`"object"`)
	return encodeJSON(m)
}

// convertToolChoice maps tool_choice; parallel_tool_calls:false becomes
// disable_parallel_tool_use.
func convertToolChoice(raw, parallel json.RawMessage) (*messagesToolPick, error) {
	var pick *messagesToolPick
	if s, ok := rawString(raw); ok {
		switch s {
		case "auto":
			pick = &messagesToolPick{Type: "auto"}
		case "required":
			pick = &messagesToolPick{Type: "any"}
		case "none":
			pick = &messagesToolPick{Type: "none"}
		default:
			return nil, errors.New(`tool_choice must be "auto", "required", "none" or a function choice`)
		}
	} else if !isNullRaw(raw) {
		var c responsesToolChoice
		if raw[0] != '{' || json.Unmarshal(raw, &c) != nil {
			return nil, errors.New("tool_choice must be a string or an object")
		}
		switch {
		case c.Type == "function" && c.Name != "":
			pick = &messagesToolPick{Type: "tool", Name: c.Name}
		case c.Type == "function" && c.Function != nil && c.Function.Name != "":
			pick = &messagesToolPick{Type: "tool", Name: c.Function.Name}
		case c.Type == "allowed_tools" && c.Mode == "required":
			pick = &messagesToolPick{Type: "any"}
		case c.Type == "allowed_tools":
			pick = &messagesToolPick{Type: "auto"}
		default:
			return nil, errors.New("tool_choice of type " + quoteForError(c.Type) + " is not supported for this model")
		}
	}
	if off, ok := rawBool(parallel); ok && !off {
		if pick == nil {
			pick = &messagesToolPick{Type: "auto"}
		}
		if pick.Type != "none" {
			pick.DisableParallelToolUse = true
		}
	}
	return pick, nil
}

// toolNamesUsed returns the distinct tool names of the tool_use blocks, in order.
func toolNamesUsed(msgs []messagesMessage) []string {
	var names []string
	seen := make(map[string]bool)
	for _, m := range msgs {
		for _, b := range m.Content {
			if b.Type == blockToolUse && !seen[b.Name] {
				seen[b.Name] = true
				names = append(names, b.Name)
			}
		}
	}
	return names
}

func placeholderTools(names []string) []messagesTool {
	out := make([]messagesTool, 0, len(names))
	for _, n := range names {
		out = append(out, messagesTool{Name: n, Description: "A tool used earlier in this conversation.",
			InputSchema: emptyObjectSchema})
	}
	return out
}
