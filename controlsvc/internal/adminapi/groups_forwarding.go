package adminapi

import (
	"encoding/json"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// A group's header policy (docs/design.md, "Forwarded headers"): which beta
// tokens of the client's anthropic-beta / OpenAI-Beta headers reach its accounts, and the
// User-Agent they see.

// Bounds of the header policy fields.
const (
	maxForwardBetas   = 200
	maxBetaTokenLen   = 100
	maxUserAgentBytes = 512
)

// groupForwardingView shows a group's header policy.
type groupForwardingView struct {
	// ForwardBetas is null for the gateway's default list (docs/design.md), [] for none.
	ForwardBetas []string `json:"forward_betas"`
	// UserAgent is sent upstream instead of the client's; "" = the client's own.
	UserAgent string `json:"user_agent"`
}

func newGroupForwardingView(f store.GroupForwarding) groupForwardingView {
	return groupForwardingView{ForwardBetas: f.ForwardBetas, UserAgent: f.UserAgent}
}

// groupForwardingInput holds the header-policy fields of POST and PATCH /groups.
type groupForwardingInput struct {
	ForwardBetas nullable `json:"forward_betas"`
	UserAgent    *string  `json:"user_agent"`
}

// forwardingPatch validates the header-policy fields into p.
func (in *groupForwardingInput) forwardingPatch(p *store.GroupPatch) error {
	if in.ForwardBetas.present {
		betas, err := parseForwardBetas(in.ForwardBetas)
		if err != nil {
			return err
		}
		p.ForwardBetas = store.BetasPatch{Set: true, Betas: betas}
	}
	if in.UserAgent != nil {
		if err := checkUserAgent(*in.UserAgent); err != nil {
			return err
		}
		p.UserAgent = in.UserAgent
	}
	return nil
}

// forwarding validates the header-policy fields of a new group; absent ones take the
// defaults (the default beta list, the client's User-Agent).
func (in *groupForwardingInput) forwarding() (store.GroupForwarding, error) {
	var p store.GroupPatch
	if err := in.forwardingPatch(&p); err != nil {
		return store.GroupForwarding{}, err
	}
	f := store.GroupForwarding{ForwardBetas: p.ForwardBetas.Betas}
	if p.UserAgent != nil {
		f.UserAgent = *p.UserAgent
	}
	return f, nil
}

// parseForwardBetas reads forward_betas: null (nil: the default list) or an array of beta
// tokens (never nil). Duplicates are dropped.
func parseForwardBetas(n nullable) ([]string, error) {
	if n.isNull() {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(n.raw, &list); err != nil {
		return nil, invalid("forward_betas must be an array of beta tokens, or null for the gateway's default list")
	}
	if len(list) > maxForwardBetas {
		return nil, invalid("forward_betas may list at most %d tokens", maxForwardBetas)
	}
	out := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, tok := range list {
		if err := checkBetaToken(tok); err != nil {
			return nil, err
		}
		if !seen[tok] {
			seen[tok] = true
			out = append(out, tok)
		}
	}
	return out, nil
}

// checkBetaToken accepts the tokens anthropic-beta and OpenAI-Beta carry, e.g.
// "interleaved-thinking-2025-05-14" or "responses=experimental": lower-case letters,
// digits and . _ = -. oauth-* betas are refused: they ask the provider to take the
// credential for a subscription token, and an account's credential is an API key.
func checkBetaToken(tok string) error {
	if tok == "" || len(tok) > maxBetaTokenLen {
		return invalid("forward_betas: each token must be 1 to %d characters", maxBetaTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' && c != '=' {
			return invalid("forward_betas: %q is not a beta token (lower-case letters, digits and - _ . = only)", tok)
		}
	}
	if strings.HasPrefix(tok, "oauth") {
		return invalid("forward_betas: %q cannot be forwarded: accounts authenticate with API keys, not OAuth", tok)
	}
	return nil
}

// checkUserAgent accepts "" (the client's) or printable ASCII up to maxUserAgentBytes.
func checkUserAgent(ua string) error {
	if len(ua) > maxUserAgentBytes {
		return invalid("user_agent must be at most %d bytes", maxUserAgentBytes)
	}
	if ua != strings.TrimSpace(ua) || !printableASCII(ua) {
		return invalid("user_agent must be printable ASCII without leading or trailing spaces, or \"\" for the client's own")
	}
	return nil
}

// printableASCII reports whether s holds only visible ASCII and spaces.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
