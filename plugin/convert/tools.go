package convert

// Tools and tool_choice of a Responses request → Anthropic Messages (docs/design.md,
// "Conversion rules for agents"; the agents' tool types in agents.go).

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// responsesToolChoice is the object form of tool_choice: {type:function,name}, the legacy
// {type:function,function:{name}}, or {type:allowed_tools,mode}.
type responsesToolChoice struct {
	Type      string `json:"type"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Mode      string `json:"mode"`
	Function  *struct {
		Name string `json:"name"`
	} `json:"function"`
}

// convertTools converts the tools: function tools as they are, the function tools of a
// namespace flattened, custom tools as one string input, web_search as the server
// web-search tool (agents.go); other types are left out with a warning in m.
func convertTools(raw json.RawMessage, m *Tools) ([]messagesTool, error) {
	if jsonsse.IsNull(raw) {
		return nil, nil
	}
	var tools []agentTool
	if raw[0] != '[' || json.Unmarshal(raw, &tools) != nil {
		return nil, errors.New("tools must be an array of tool objects")
	}
	var out []messagesTool
	search := false
	for i := 0; i < len(tools); i++ {
		t := tools[i]
		at := "tools[" + strconv.Itoa(i) + "]"
		switch t.Type {
		case "function":
			mt, err := functionTool(t, "", at, m)
			if err != nil {
				return nil, err
			}
			out = append(out, mt)
		case "namespace":
			if t.Name == "" {
				return nil, errors.New(at + ".name is required")
			}
			for j := 0; j < len(t.Tools); j++ {
				inner := t.Tools[j]
				iat := at + ".tools[" + strconv.Itoa(j) + "]"
				switch inner.Type {
				case "function", "":
					mt, err := functionTool(inner, t.Name, iat, m)
					if err != nil {
						return nil, err
					}
					// A flat tool has no field for its server: the namespace's
					// description opens the tool's.
					mt.Description = joinDescriptions(t.Description, mt.Description)
					out = append(out, mt)
				case "custom":
					if inner.Name == "" {
						return nil, errors.New(iat + ".name is required")
					}
					out = append(out, messagesTool{Name: m.add(toolCustom, t.Name, inner.Name),
						Description: joinDescriptions(t.Description, customDescription(inner)), InputSchema: customToolSchema})
				default:
					m.warn(iat + ": tool type " + quoteForError(inner.Type) + " in a namespace has no Claude equivalent; left out")
				}
			}
		case "custom":
			if t.Name == "" {
				return nil, errors.New(at + ".name is required")
			}
			out = append(out, messagesTool{Name: m.add(toolCustom, "", t.Name), Description: customDescription(t),
				InputSchema: customToolSchema})
		case "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11":
			if search {
				m.warn(at + ": a second web_search tool; Claude takes one, the first is used")
				continue
			}
			search = true
			out = append(out, webSearchTool(t))
		default:
			m.warn(at + ": tool type " + quoteForError(t.Type) + " has no Claude equivalent; left out")
		}
	}
	return out, nil
}

// joinDescriptions joins a namespace's description and a tool's by a blank line.
func joinDescriptions(namespace, tool string) string {
	namespace = strings.TrimSpace(namespace)
	switch {
	case namespace == "":
		return tool
	case tool == "":
		return namespace
	}
	return namespace + "\n\n" + tool
}

// functionTool converts a function tool, of a namespace when namespace is not "".
func functionTool(t agentTool, namespace, at string, m *Tools) (messagesTool, error) {
	if t.Name == "" {
		return messagesTool{}, errors.New(at + ".name is required")
	}
	schema, err := objectSchema(t.Parameters)
	if err != nil {
		return messagesTool{}, errors.New(at + ".parameters " + err.Error())
	}
	return messagesTool{Name: m.add(toolFunction, namespace, t.Name), Description: t.Description, InputSchema: schema}, nil
}

// objectSchema returns a function's parameters as an Anthropic input_schema, which must be
// an object schema: absent parameters become an empty one, a missing type becomes "object".
func objectSchema(raw json.RawMessage) (json.RawMessage, error) {
	if jsonsse.IsNull(raw) {
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
	return jsonsse.Encode(m)
}

// convertToolChoice maps tool_choice; parallel_tool_calls:false becomes
// disable_parallel_tool_use.
func convertToolChoice(raw, parallel json.RawMessage, m *Tools) (*messagesToolPick, error) {
	var pick *messagesToolPick
	if s, ok := jsonsse.String(raw); ok {
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
	} else if !jsonsse.IsNull(raw) {
		var c responsesToolChoice
		if raw[0] != '{' || json.Unmarshal(raw, &c) != nil {
			return nil, errors.New("tool_choice must be a string or an object")
		}
		switch {
		case c.Type == "function" && c.Name != "":
			pick = &messagesToolPick{Type: "tool", Name: m.flatName(c.Namespace, c.Name)}
		case c.Type == "function" && c.Function != nil && c.Function.Name != "":
			pick = &messagesToolPick{Type: "tool", Name: m.flatName("", c.Function.Name)}
		case c.Type == "allowed_tools" && c.Mode == "required":
			pick = &messagesToolPick{Type: "any"}
		case c.Type == "custom" && c.Name != "":
			pick = &messagesToolPick{Type: "tool", Name: m.flatName("", c.Name)}
		case c.Type == "allowed_tools":
			pick = &messagesToolPick{Type: "auto"}
		default:
			return nil, errors.New("tool_choice of type " + quoteForError(c.Type) + " is not supported for this model")
		}
	}
	if off, ok := jsonsse.Bool(parallel); ok && !off {
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

// hasClientTools reports whether tools holds a client tool (not only server tools).
func hasClientTools(tools []messagesTool) bool {
	for _, t := range tools {
		if t.Type == "" {
			return true
		}
	}
	return false
}

// inputToolsItem is the part of an input item that addInputTools reads.
type inputToolsItem struct {
	Type  string          `json:"type"`
	Tools json.RawMessage `json:"tools"`
}

// addInputTools adds the tools an agent declares inside its input rather than in tools:
// Codex sends every tool of its default model as an input item {"type": "additional_tools",
// "tools": [namespaces, functions, custom tools]}. They are converted like the request's
// tools, before the history (whose calls are named by the flat names they register), and a
// tool whose flat name is already declared is not declared twice (Anthropic refuses
// duplicate names). The input is decoded for this only when it names such an item.
func addInputTools(tools []messagesTool, input json.RawMessage, m *Tools) ([]messagesTool, error) {
	if len(input) == 0 || input[0] != '[' || !bytes.Contains(input, []byte(`"additional_tools"`)) {
		return tools, nil
	}
	var items []inputToolsItem
	if json.Unmarshal(input, &items) != nil {
		return tools, nil // convertInput reports the malformed input
	}
	declared := make(map[string]bool, len(tools))
	for i := 0; i < len(tools); i++ {
		declared[tools[i].Name] = true
	}
	for i := 0; i < len(items); i++ {
		if items[i].Type != "additional_tools" || jsonsse.IsNull(items[i].Tools) {
			continue
		}
		more, err := convertTools(items[i].Tools, m)
		if err != nil {
			return nil, errors.New("input[" + strconv.Itoa(i) + "]: " + err.Error())
		}
		for j := 0; j < len(more); j++ {
			if !declared[more[j].Name] {
				declared[more[j].Name] = true
				tools = append(tools, more[j])
			}
		}
	}
	return tools, nil
}
