package admission

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Models a group can serve (docs/design.md, "Models a key can use"). A model is
// served when some name answers for it and an account of the group serves it:
//   - it answers when the group's mapping names it (exactly or by a wildcard), when an
//     account's mapping names the model the group routes it to (an exact key is the
//     account's list of models; a wildcard key, pass-through or not, is the operator's rule
//     for a family), or when the model catalogue lists it for the group's platform;
//   - an account serves it when its mapping resolves the routed model: an empty mapping
//     serves every model that answers, never a model nothing answers for.
// So a new Claude model an account lists (an exact key, "claude-opus-5": "claude-opus-5")
// or a family it passes through ("claude-*": "claude-*") is served before the catalogue
// knows it, and gpt-4o-mini on an anthropic group whose accounts have empty mappings is
// 404 model_not_found before any upstream call, marking no account. Without a catalogue
// (Config.Catalogue nil) an empty mapping still serves every model, as it did before the catalogue.

// ModelCatalogue names the catalogue's models of a platform (the model catalogue package
// implements it: contract D).
type ModelCatalogue interface {
	Models(platform string) []string
}

// maxNamedModels is how many models the 404 model_not_found names.
const maxNamedModels = 10

// catalogueSet is the catalogue's models of platform as a set, cached for CacheTTL; nil
// without a catalogue.
func (s *Admitter) catalogueSet(ctx context.Context, platform string) map[string]bool {
	if s.catalogue == nil {
		return nil
	}
	set, _ := s.catalogueSets.Get(ctx, platform, func(context.Context) (map[string]bool, error) {
		names := s.catalogue.Models(platform)
		out := make(map[string]bool, len(names))
		for _, n := range names {
			out[n] = true
		}
		return out, nil
	})
	return set
}

// answers reports whether a name answers for routed (the group-mapped model), named being
// whether the group's mapping (or the operator, for a fallback) names it: see the top.
func (s *Admitter) answers(ctx context.Context, platform string, accounts []groupAccount, routed string, named bool) bool {
	if named || s.catalogue == nil {
		return true
	}
	for i := range accounts {
		if _, ok := accounts[i].mapping.Lookup(routed); ok {
			return true
		}
	}
	return s.catalogueSet(ctx, platform)[routed]
}

// ServableModels are the models the key may use (servableModels); ok is false for a key
// that does not authenticate (or none), and groupID is the key's group once it did.
func (s *Admitter) ServableModels(ctx context.Context, apiKey string) (models []string, groupID int64, ok bool, err error) {
	kr, err := s.authenticate(ctx, apiKey)
	if err != nil {
		return nil, 0, false, err
	}
	if apiKey == "" || !kr.ok {
		return nil, 0, false, nil
	}
	models, err = s.servableModels(ctx, kr.auth, kr.rules)
	return models, kr.auth.GroupID, true, err
}

// servableModels are the models the key's group serves, the group's mapping keys first,
// then its accounts' mapping keys, then the catalogue's entries for its platform (each
// sorted, wildcard keys left out: they are not model names), every one of them passing the
// group's restrictions and served by an account (servable).
func (s *Admitter) servableModels(ctx context.Context, key store.KeyAuth, rules groupRules) ([]string, error) {
	accounts, err := s.groupAccounts(ctx, key.GroupID, key.Platform)
	if err != nil {
		return nil, fmt.Errorf("loading accounts: %w", err)
	}
	var names []string
	names = append(names, sortedNames(rules.mapping.ExactKeys())...)
	var accNames []string
	for i := range accounts {
		accNames = append(accNames, accounts[i].mapping.ExactKeys()...)
	}
	names = append(names, sortedNames(accNames)...)
	if s.catalogue != nil {
		names = append(names, sortedNames(s.catalogue.Models(key.Platform))...)
	}
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if s.servable(ctx, key, rules, accounts, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// servable reports whether a request for model would find an account of the group: the
// group's restrictions allow it, a name answers for it and an account's mapping serves it
// (health aside: a resting account still serves its models).
func (s *Admitter) servable(ctx context.Context, key store.KeyAuth, rules groupRules, accounts []groupAccount, model string) bool {
	routed, named := rules.route(model)
	if rules.restrict && !named {
		return false
	}
	if !s.answers(ctx, key.Platform, accounts, routed, named) {
		return false
	}
	for i := range accounts {
		if _, ok := accounts[i].mapping.Resolve(routed); ok {
			return true
		}
	}
	return false
}

// sortedNames is names without wildcards, sorted.
func sortedNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !strings.HasSuffix(n, "*") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// modelNotFound is the 404 of a model no account of the group serves, naming the model
// asked for and up to maxNamedModels the key can use.
func (s *Admitter) modelNotFound(ctx context.Context, key store.KeyAuth, rules groupRules, requested string) (*Rejection, error) {
	rej := rejectModelNotFound(requested)
	models, err := s.servableModels(ctx, key, rules)
	if err != nil {
		return nil, err
	}
	if len(models) == 0 {
		return rej, nil
	}
	more := ""
	if len(models) > maxNamedModels {
		more = fmt.Sprintf(" and %d more (GET /v1/models)", len(models)-maxNamedModels)
		models = models[:maxNamedModels]
	}
	rej.message += "; models available to this API key: " + strings.Join(models, ", ") + more
	return rej, nil
}

// RejectNoSuchModel is the 404 of GET /v1/models/{id} for a model the key cannot use, as
// each API words it: OpenAI's invalid_request_error with code model_not_found, Anthropic's
// not_found_error.
func RejectNoSuchModel(id string, anthropic bool) *Rejection {
	if anthropic {
		return &Rejection{status: http.StatusNotFound, reason: ReasonModelNotFound, errType: "not_found_error",
			message: "model: " + id}
	}
	return &Rejection{status: http.StatusNotFound, reason: ReasonModelNotFound, errType: "invalid_request_error",
		code: "model_not_found", message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", id)}
}

// rejectModelNotFound is the 404 of a model no account serves, naming it (modelNotFound adds
// the models the key can use).
func rejectModelNotFound(model string) *Rejection {
	return &Rejection{status: http.StatusNotFound, reason: ReasonModelNotFound, errType: "model_not_found",
		message: fmt.Sprintf("Model %q is not supported by any configured account in this group", model)}
}
