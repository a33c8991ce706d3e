package convert

// Responses → Anthropic Messages request conversion (docs/design.md, "Conversion contract"
// and "Conversion rules for agents"): max_tokens always exceeds the thinking
// budget, and the tool pairing is repaired so that Anthropic accepts the history. The
// conversion runs once per attempt on the untouched client body; messages.go turns the
// input items into messages.

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Output and thinking sizes of a converted request.
const (
	// defaultMaxTokens is max_tokens when the client names no max_output_tokens (Anthropic
	// requires one).
	defaultMaxTokens = 8192
	// maxDefaultedTokens caps max_tokens when it is derived from a thinking budget: 32000 is
	// the lowest output maximum of the Claude models that think (Opus 4 and 4.1).
	maxDefaultedTokens = 32000
	// minThinkingBudget is Anthropic's minimum budget_tokens.
	minThinkingBudget = 1024
	// minAnswerTokens is what a budget leaves of max_tokens for the answer at least.
	minAnswerTokens = 1024
)

// thinkingBudgets maps reasoning.effort to budget_tokens; 0: no thinking.
var thinkingBudgets = map[string]int64{
	"none":    0,
	"minimal": 0,
	"low":     1024,
	"medium":  4096,
	"high":    10240,
	"xhigh":   32768,
}

// The conversion reads the Responses fields it maps from Fields (json.go), the one
// decode of the body that validation made. Fields it drops on purpose: store, include,
// text.verbosity, service_tier, prompt_cache_key, previous_response_id (Anthropic keeps no
// server-side state), metadata, truncation, max_tool_calls, top_logprobs, user,
// safety_identifier, stream (upstream always streams). text.format json_schema becomes
// output_config (reasoning.go).

// messagesRequest is the Anthropic Messages request sent upstream.
type messagesRequest struct {
	Model     string `json:"model"`
	MaxTokens int64  `json:"max_tokens"`
	// System is a JSON string, or an array of one text block carrying a cache breakpoint.
	System      json.RawMessage   `json:"system,omitempty"`
	Messages    []messagesMessage `json:"messages"`
	Tools       []messagesTool    `json:"tools,omitempty"`
	ToolChoice  *messagesToolPick `json:"tool_choice,omitempty"`
	Temperature *float64          `json:"temperature,omitempty"`
	TopP        *float64          `json:"top_p,omitempty"`
	Thinking    *messagesThinking `json:"thinking,omitempty"`
	// OutputConfig carries text.format json_schema as Claude's structured output.
	OutputConfig *messagesOutputConfig `json:"output_config,omitempty"`
	Stream       bool                  `json:"stream"`
}

type messagesOutputConfig struct {
	Format messagesOutputFormat `json:"format"`
}

type messagesOutputFormat struct {
	Type   string          `json:"type"`
	Schema json.RawMessage `json:"schema"`
}

// cacheControl is a prompt-caching breakpoint.
type cacheControl struct {
	Type string `json:"type"`
}

// messagesTool is a client tool (input_schema) or, with a type, a server tool.
type messagesTool struct {
	Type           string                `json:"type,omitempty"`
	Name           string                `json:"name"`
	Description    string                `json:"description,omitempty"`
	InputSchema    json.RawMessage       `json:"input_schema,omitempty"`
	AllowedDomains []string              `json:"allowed_domains,omitempty"`
	UserLocation   *messagesUserLocation `json:"user_location,omitempty"`
	CacheControl   *cacheControl         `json:"cache_control,omitempty"`
}

type messagesToolPick struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type messagesThinking struct {
	Type         string `json:"type"`
	BudgetTokens int64  `json:"budget_tokens"`
}

type responsesReasoning struct {
	Effort json.RawMessage `json:"effort"`
}

var (
	errConvertNotObject = errors.New("request body must be a JSON object")
	errNoMessages       = errors.New("input must contain at least one user or assistant message")
)

// emptyObjectSchema is the input_schema of a function tool without parameters.
var emptyObjectSchema = json.RawMessage(`{"type":"object","properties":{}}`)

// responsesToMessages converts a Responses request body into the Anthropic Messages body
// sent to upstreamModel (the body's model when empty), always streamed. An error describes
// invalid input in words fit for the client's 400.
func responsesToMessages(body []byte, upstreamModel string) ([]byte, error) {
	if len(body) == 0 || body[0] != '{' {
		return nil, errConvertNotObject
	}
	req, ok := decodeFields(body)
	if !ok {
		return nil, errConvertNotObject
	}
	return convertRequest(&req, upstreamModel, 0)
}

// convertRequest converts the decoded fields of a Responses request, without cache
// breakpoints (convertAgentRequest is what an attempt sends).
func convertRequest(req *Fields, upstreamModel string, limit int64) ([]byte, error) {
	b, _, err := convertAgentRequest(req, upstreamModel, limit, false)
	return b, err
}

// convertAgentRequest converts the decoded fields of a Responses request. limit, when above
// 0, is the output cap of the grant (what the reservation covers): max_tokens never exceeds
// it, and it is max_tokens when the client names no max_output_tokens. cache adds the
// automatic prompt-caching breakpoints (cache.go). The returned Tools maps the
// tool names back and holds the warnings.
func convertAgentRequest(req *Fields, upstreamModel string, limit int64, cache bool) ([]byte, *Tools, error) {
	out := messagesRequest{Model: upstreamModel, Stream: true}
	if out.Model == "" {
		out.Model, _ = jsonsse.String(req.Model)
	}
	m := newConvTools()
	var err error
	// Tools first: the history's calls are named by the flat names they register.
	if out.Tools, err = convertTools(req.Tools, m); err != nil {
		return nil, nil, err
	}
	if out.Tools, err = addInputTools(out.Tools, req.Input, m); err != nil {
		return nil, nil, err
	}
	if out.ToolChoice, err = convertToolChoice(req.ToolChoice, req.ParallelToolCalls, m); err != nil {
		return nil, nil, err
	}
	system, msgs, err := convertInput(req.Instructions, req.Input, m)
	if err != nil {
		return nil, nil, err
	}
	if system != "" {
		out.System, _ = jsonsse.Encode(system)
	}
	if out.OutputConfig, err = convertTextFormat(req.Text, m); err != nil {
		return nil, nil, err
	}
	out.Messages = dropBareThinking(repairMessages(msgs))
	if len(out.Messages) == 0 {
		return nil, nil, errNoMessages
	}
	if !hasClientTools(out.Tools) {
		if len(out.Tools) == 0 {
			out.ToolChoice = nil // Anthropic refuses tool_choice without tools
		}
		if names := toolNamesUsed(out.Messages); len(names) > 0 {
			// "Requests which include tool_use or tool_result blocks must define tools":
			// declare the tools of the history, and forbid calling them.
			out.Tools = append(out.Tools, placeholderTools(names)...)
			if len(out.Tools) == len(names) {
				out.ToolChoice = &messagesToolPick{Type: "none"}
			}
		}
	}
	if err = convertSampling(req, &out); err != nil {
		return nil, nil, err
	}
	maxTokens, given, err := rawPositiveInt(req.MaxOutputTokens, "max_output_tokens")
	if err != nil {
		return nil, nil, err
	}
	budget, err := thinkingBudget(req.Reasoning)
	if err != nil {
		return nil, nil, err
	}
	if budget > 0 && !thinkingAllowed(out) {
		budget = 0
	}
	if limit > 0 && (!given || maxTokens > limit) {
		maxTokens, given = limit, true
	}
	out.MaxTokens, budget = outputSizes(maxTokens, given, budget)
	if budget > 0 {
		out.Thinking = &messagesThinking{Type: "enabled", BudgetTokens: budget}
		// With thinking on, Anthropic accepts temperature 1 only and top_p from 0.95.
		// (Two statements: Yaegi v0.16.1 panics on "a, b = nil, nil".)
		out.Temperature = nil
		out.TopP = nil
	} else {
		out.Messages = withoutThinking(out.Messages)
	}
	if cache {
		addCacheBreakpoints(&out)
	}
	b, err := jsonsse.Encode(out)
	if err != nil {
		return nil, nil, err
	}
	return b, m, nil
}

// convertSampling maps temperature and top_p.
func convertSampling(req *Fields, out *messagesRequest) error {
	var err error
	if out.Temperature, err = rawUnitNumber(req.Temperature, "temperature", 2); err != nil {
		return err
	}
	if out.Temperature != nil && *out.Temperature > 1 {
		one := 1.0 // OpenAI's range is 0–2, Anthropic's 0–1
		out.Temperature = &one
	}
	out.TopP, err = rawUnitNumber(req.TopP, "top_p", 1)
	return err
}

// outputSizes returns max_tokens and the thinking budget (0: no thinking), keeping
// max_tokens > budget_tokens (Anthropic refuses the request otherwise; sub2api sent 8192
// with a 10240 budget). A client's max_output_tokens is kept, as OpenAI counts reasoning
// inside it, and the budget shrinks to leave minAnswerTokens; without one, max_tokens is
// the budget plus defaultMaxTokens, capped at maxDefaultedTokens.
func outputSizes(maxTokens int64, given bool, budget int64) (int64, int64) {
	if !given {
		maxTokens = defaultMaxTokens
		if budget > 0 {
			maxTokens = budget + defaultMaxTokens
			if maxTokens > maxDefaultedTokens {
				maxTokens = maxDefaultedTokens
			}
		}
	}
	if budget > maxTokens-minAnswerTokens {
		budget = maxTokens - minAnswerTokens
	}
	if budget < minThinkingBudget {
		budget = 0
	}
	return maxTokens, budget
}

// thinkingAllowed reports whether Anthropic accepts thinking for the converted request: not
// with a tool_choice that forces a tool, and not when the last assistant message calls tools
// without starting with the thinking block it was answered with (Anthropic then wants one).
func thinkingAllowed(r messagesRequest) bool {
	if r.ToolChoice != nil && (r.ToolChoice.Type == "any" || r.ToolChoice.Type == "tool") {
		return false
	}
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role != roleAssistant {
			continue
		}
		c := r.Messages[i].Content
		if len(c) > 0 && (c[0].Type == blockThinkingIn || c[0].Type == blockRedactedIn) {
			return true
		}
		for _, b := range c {
			if b.Type == blockToolUse {
				return false
			}
		}
		return true
	}
	return true
}

func thinkingBudget(raw json.RawMessage) (int64, error) {
	if jsonsse.IsNull(raw) {
		return 0, nil
	}
	var r responsesReasoning
	if raw[0] != '{' || json.Unmarshal(raw, &r) != nil {
		return 0, errors.New("reasoning must be an object")
	}
	if jsonsse.IsNull(r.Effort) {
		return thinkingBudgets["medium"], nil // OpenAI's default effort
	}
	effort, ok := jsonsse.String(r.Effort)
	budget, known := thinkingBudgets[effort]
	if !ok || !known {
		return 0, errors.New("reasoning.effort must be one of none, minimal, low, medium, high, xhigh")
	}
	return budget, nil
}

// rawUnitNumber reads an optional number in [0, limit].
func rawUnitNumber(raw json.RawMessage, field string, limit float64) (*float64, error) {
	if jsonsse.IsNull(raw) {
		return nil, nil
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f < 0 || f > limit {
		return nil, errors.New(field + " must be a number between 0 and " + strconv.Itoa(int(limit)))
	}
	return &f, nil
}

// rawPositiveInt reads an optional positive whole number; given is false when absent or null.
func rawPositiveInt(raw json.RawMessage, field string) (int64, bool, error) {
	if jsonsse.IsNull(raw) {
		return 0, false, nil
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f < 1 || f != float64(int64(f)) || f > jsonsse.MaxTokenCount {
		return 0, false, errors.New(field + " must be a positive integer")
	}
	return int64(f), true, nil
}

// quoteForError quotes a client-supplied name for an error message.
func quoteForError(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.ReplaceAll(s, `"`, `'`) + `"`
}
