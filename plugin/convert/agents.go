package convert

// The tools agents send (docs/design.md, "Conversion rules for agents"): Codex's
// namespaces (MCP servers, additional tools) become flat Claude tools named
// namespace__name, its custom (freeform grammar) tools such as apply_patch a tool with one
// string input, web_search Anthropic's server web-search tool. The names are kept in a
// Tools map, so that the stream conversion gives each tool_use back its original
// namespace, name and kind. A tool with no Claude counterpart becomes a warning of the
// record, never a silent drop.

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"
)

// Kinds of a converted tool.
const (
	toolFunction = 0
	toolCustom   = 1
)

const (
	// maxToolName is Anthropic's tool name limit (^[a-zA-Z0-9_-]{1,64}$).
	maxToolName = 64
	// namespaceSep joins a namespace and a tool name into a flat Claude tool name.
	namespaceSep = "__"
	// webSearchToolType is Anthropic's server web-search tool.
	webSearchToolType = "web_search_20250305"
	// customInputKey is the one string property of a converted custom tool.
	customInputKey = "input"
	// maxWarnings and maxWarningLen bound the record's warnings.
	maxWarnings   = 8
	maxWarningLen = 160
)

// customToolSchema is the input_schema of a converted custom tool: one string.
var customToolSchema = json.RawMessage(`{"type":"object","properties":{"input":{"type":"string","description":"The raw input of the tool, exactly as its format describes."}},"required":["input"],"additionalProperties":false}`)

// convToolRef is what a flat Claude tool name stands for.
type convToolRef struct {
	kind      int
	namespace string
	name      string
}

// Tools maps the converted tools' flat names back, and collects the conversion's
// warnings.
type Tools struct {
	byFlat   map[string]convToolRef
	flatFor  map[string]string // namespace + "\x00" + name → flat name
	warnings []string
}

func newConvTools() *Tools {
	return &Tools{byFlat: make(map[string]convToolRef), flatFor: make(map[string]string)}
}

// warn adds a warning, bounded in number and length.
func (m *Tools) warn(w string) {
	if m == nil || len(m.warnings) >= maxWarnings {
		return
	}
	if len(w) > maxWarningLen {
		w = w[:maxWarningLen]
	}
	m.warnings = append(m.warnings, w)
}

// add registers a tool and returns its flat name: namespace__name with the characters
// Anthropic refuses replaced by '_'; a name over 64 characters (or one already taken)
// becomes its first 55 characters, '_' and 8 hex digits of a hash of the original.
func (m *Tools) add(kind int, namespace, name string) string {
	key := namespace + "\x00" + name
	if flat, ok := m.flatFor[key]; ok {
		return flat
	}
	flat := name
	if namespace != "" {
		flat = namespace + namespaceSep + name
	}
	flat = toolID(flat)
	if _, taken := m.byFlat[flat]; len(flat) > maxToolName || taken {
		h := fnv.New32a()
		_, _ = h.Write([]byte(key))
		sum := strconv.FormatUint(uint64(h.Sum32()), 16)
		for len(sum) < 8 {
			sum = "0" + sum
		}
		if len(flat) > maxToolName-9 {
			flat = flat[:maxToolName-9]
		}
		flat = flat + "_" + sum
	}
	m.byFlat[flat] = convToolRef{kind: kind, namespace: namespace, name: name}
	m.flatFor[key] = flat
	return flat
}

// flatName returns the flat name of a tool named in the history (a function_call's
// namespace and name): the registered one, else the same rule without registering.
func (m *Tools) flatName(namespace, name string) string {
	if flat, ok := m.flatFor[namespace+"\x00"+name]; ok {
		return flat
	}
	if namespace == "" {
		return toolID(name)
	}
	return m.add(toolFunction, namespace, name)
}

// lookup returns what a flat name stands for; an unknown name is a plain function.
func (m *Tools) lookup(flat string) convToolRef {
	if m != nil {
		if r, ok := m.byFlat[flat]; ok {
			return r
		}
	}
	return convToolRef{kind: toolFunction, name: flat}
}

// agentTool is a Responses tool as agents send it: function, namespace (with its function
// tools), custom (freeform, with a grammar or text format) or a hosted tool.
type agentTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Tools       []agentTool     `json:"tools"`
	Format      *struct {
		Type       string `json:"type"`
		Syntax     string `json:"syntax"`
		Definition string `json:"definition"`
	} `json:"format"`
	Filters *struct {
		AllowedDomains []string `json:"allowed_domains"`
	} `json:"filters"`
	UserLocation *messagesUserLocation `json:"user_location"`
}

type messagesUserLocation struct {
	Type     string `json:"type"`
	City     string `json:"city,omitempty"`
	Region   string `json:"region,omitempty"`
	Country  string `json:"country,omitempty"`
	Timezone string `json:"timezone,omitempty"`
}

// customDescription is a custom tool's description for Claude: the client's, and how the
// one input carries the raw text, with the grammar it must follow.
func customDescription(t agentTool) string {
	d := strings.TrimSpace(t.Description)
	if d != "" {
		d += "\n\n"
	}
	d += `Pass the tool's raw input, unquoted and unescaped beyond JSON, as the string field "input".`
	if t.Format != nil && t.Format.Type == "grammar" && t.Format.Definition != "" {
		syntax := t.Format.Syntax
		if syntax == "" {
			syntax = "lark"
		}
		d += " The input must match this " + syntax + " grammar:\n" + t.Format.Definition
	}
	return d
}

// webSearchTool is Anthropic's server web-search tool for a Responses web_search tool.
func webSearchTool(t agentTool) messagesTool {
	out := messagesTool{Type: webSearchToolType, Name: "web_search"}
	if t.Filters != nil && len(t.Filters.AllowedDomains) > 0 {
		out.AllowedDomains = t.Filters.AllowedDomains
	}
	if t.UserLocation != nil {
		loc := *t.UserLocation
		loc.Type = "approximate"
		out.UserLocation = &loc
	}
	return out
}
