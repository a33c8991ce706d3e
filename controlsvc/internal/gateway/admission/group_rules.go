package admission

import (
	"fmt"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/scheduler"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// A key's group decides which endpoints it serves and how it names models
// (docs/design.md, "Group model rules and dispatch"). The checks here are pure: they need the
// cached key and the request, never Redis or PostgreSQL.

// Platforms of groups and accounts.
const (
	platformOpenAI    = "openai"
	PlatformAnthropic = "anthropic"
)

// responsesAlias is the plugin's alias of /v1/responses; the plugin normalises it, but a
// request naming it is treated alike.
const responsesAlias = "/openai/v1/responses"

// convertResponsesToMessages is the grant's convert value for a Responses request served by
// an Anthropic account: the plugin converts the body, calls <base_url>/v1/messages and
// converts the answer back.
const convertResponsesToMessages = "responses_to_messages"

// Reject reasons of the group rules.
const (
	ReasonRestricted     = "restricted"
	ReasonClaudeCodeOnly = "claude_code_only"
	ReasonPlatform       = "platform"
)

// Messages of the group-rule refusals.
const (
	msgRestricted     = "The requested model is not available for this API key"
	msgClaudeCodeOnly = "This group is restricted to Claude Code clients (/v1/messages only)"
	msgNeedsAnthropic = "This endpoint requires an Anthropic group; this API key's group serves OpenAI models " +
		"(use /v1/responses or /v1/chat/completions)"
)

var (
	rejectRestricted = &Rejection{status: http.StatusServiceUnavailable, reason: ReasonRestricted,
		errType: "api_error", message: msgRestricted}

	rejectClaudeCodeOnly = &Rejection{status: http.StatusForbidden, reason: ReasonClaudeCodeOnly,
		errType: "permission_error", message: msgClaudeCodeOnly}

	rejectNeedsAnthropic = &Rejection{status: http.StatusBadRequest, reason: ReasonPlatform,
		errType: "invalid_request_error", message: msgNeedsAnthropic}
)

// groupRules is a key's group's model rules, compiled once per key cache fill.
type groupRules struct {
	mapping        scheduler.Mapping
	restrict       bool
	claudeCodeOnly bool
	fallbacks      fallbackRules // fallback.go
}

// compileGroupRules reads the rules that came with the key.
func compileGroupRules(a store.KeyAuth) (groupRules, error) {
	m, err := scheduler.ParseMapping([]byte(a.GroupModelMapping))
	if err != nil {
		return groupRules{}, fmt.Errorf("reading model mapping of group %d: %w", a.GroupID, err)
	}
	fb, err := compileFallbacks(a.GroupID, a.ModelFallbacks)
	if err != nil {
		return groupRules{}, err
	}
	return groupRules{mapping: m, restrict: a.RestrictModels, claudeCodeOnly: a.ClaudeCodeOnly, fallbacks: fb}, nil
}

// route maps the requested model through the group's mapping: the model the group's
// accounts are asked for (their own mappings apply to it next), and whether the mapping
// names the requested model at all.
func (r groupRules) route(model string) (routed string, named bool) {
	up, named := r.mapping.Lookup(model)
	if up == "" {
		return model, named
	}
	return up, named
}

// endpointRefusal refuses a request the key's group does not serve on this endpoint, or a
// model a restricted group does not name; nil lets it through. Messages needs an Anthropic
// group; a claude_code_only group serves nothing else (the client itself is not inspected:
// any /v1/messages client passes).
func (r groupRules) endpointRefusal(path, platform string, named bool) *Rejection {
	switch {
	case path == AnthropicPath && platform != PlatformAnthropic:
		return rejectNeedsAnthropic
	case r.claudeCodeOnly && path != AnthropicPath:
		return rejectClaudeCodeOnly
	case r.restrict && !named:
		return rejectRestricted
	}
	return nil
}

// responsesCompactPath is Codex's remote compaction, a Responses call: converted like one
// on an Anthropic group (the plugin asks Claude for a summary).
const responsesCompactPath = "/v1/responses/compact"

// isResponsesPath reports whether path is the Responses endpoint, its alias or compaction.
func isResponsesPath(path string) bool {
	return path == "/v1/responses" || path == responsesAlias || path == responsesCompactPath
}

// convertFor is the grant's convert value: Responses requests on an Anthropic group are
// converted by the plugin; everything else passes through ("").
func convertFor(path, platform string) string {
	if platform == PlatformAnthropic && isResponsesPath(path) {
		return convertResponsesToMessages
	}
	return ""
}
