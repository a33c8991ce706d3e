package adminapi

import (
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// groupRulesView shows a group's model rules (docs/design.md, "Group model
// rules").
type groupRulesView struct {
	// ModelMapping maps requested models to the model the group's accounts are asked for,
	// before each account's own mapping; {} = none.
	ModelMapping   map[string]string `json:"model_mapping"`
	RestrictModels bool              `json:"restrict_models"`
	ClaudeCodeOnly bool              `json:"claude_code_only"`
}

func newGroupRulesView(r store.GroupModelRules) groupRulesView {
	m := r.ModelMapping
	if m == nil {
		m = map[string]string{}
	}
	return groupRulesView{ModelMapping: m, RestrictModels: r.RestrictModels, ClaudeCodeOnly: r.ClaudeCodeOnly}
}

// groupRulesInput holds the model-rule fields of POST and PATCH /groups. Whether the rules
// fit together (restrict_models needs a mapping, claude_code_only an anthropic group) is
// checked by the store on the resulting row, so a PATCH of one field sees the others.
type groupRulesInput struct {
	ModelMapping   *map[string]string `json:"model_mapping"`
	RestrictModels *bool              `json:"restrict_models"`
	ClaudeCodeOnly *bool              `json:"claude_code_only"`
}

// rulesPatch validates the model-rule fields into p.
func (in *groupRulesInput) rulesPatch(p *store.GroupPatch) error {
	if in.ModelMapping != nil {
		if err := checkGroupModelMapping(*in.ModelMapping); err != nil {
			return err
		}
	}
	p.ModelMapping, p.RestrictModels, p.ClaudeCodeOnly = in.ModelMapping, in.RestrictModels, in.ClaudeCodeOnly
	return nil
}

// rules validates the model-rule fields of a new group; absent ones are off.
func (in *groupRulesInput) rules() (store.GroupModelRules, error) {
	var p store.GroupPatch
	if err := in.rulesPatch(&p); err != nil {
		return store.GroupModelRules{}, err
	}
	var r store.GroupModelRules
	if p.ModelMapping != nil {
		r.ModelMapping = *p.ModelMapping
	}
	if p.RestrictModels != nil {
		r.RestrictModels = *p.RestrictModels
	}
	if p.ClaudeCodeOnly != nil {
		r.ClaudeCodeOnly = *p.ClaudeCodeOnly
	}
	return r, nil
}

// checkGroupModelMapping is an account's mapping check plus one form only a group needs: a
// wildcard whose target is itself ("claude-haiku*": "claude-haiku*") names a family and
// passes its models through unchanged, which is how a restricted group allows one.
func checkGroupModelMapping(m map[string]string) error {
	rest := make(map[string]string, len(m))
	for from, to := range m {
		if strings.HasSuffix(from, "*") && to == from {
			to = strings.TrimSuffix(from, "*") // checked as a plain target: non-empty, no *
			if to == "" {
				return invalid("model_mapping[%q]: a pass-through wildcard needs a prefix", from)
			}
		}
		rest[from] = to
	}
	return checkModelMapping(rest)
}
