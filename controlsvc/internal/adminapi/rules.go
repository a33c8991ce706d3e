package adminapi

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// ChangeNotifier is told after every write of data that controlsvc instances cache (error
// passthrough rules, model prices), so that every instance reloads it (package livecache).
type ChangeNotifier interface {
	Changed(ctx context.Context) error
}

// Limits of an error passthrough rule.
const (
	maxRuleCodes      = 100
	maxRuleKeywords   = 100
	maxRuleTextLen    = 2000 // custom_message, description
	minHTTPStatusCode = 100
	maxHTTPStatusCode = 599
)

var matchModes = []string{"any", "all"}

type ruleView struct {
	ID              int64     `json:"id"`
	Name            string    `json:"name"`
	Enabled         bool      `json:"enabled"`
	Priority        int       `json:"priority"`
	ErrorCodes      []int     `json:"error_codes"`
	Keywords        []string  `json:"keywords"`
	MatchMode       string    `json:"match_mode"`
	Platforms       []string  `json:"platforms"`
	PassthroughCode bool      `json:"passthrough_code"`
	ResponseCode    *int      `json:"response_code"`
	PassthroughBody bool      `json:"passthrough_body"`
	CustomMessage   *string   `json:"custom_message"`
	SkipMonitoring  bool      `json:"skip_monitoring"`
	Description     string    `json:"description"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func newRuleView(r store.PassthroughRule) ruleView {
	v := ruleView{
		ID: r.ID, Name: r.Name, Enabled: r.Enabled, Priority: r.Priority, ErrorCodes: r.ErrorCodes,
		Keywords: r.Keywords, MatchMode: r.MatchMode, Platforms: r.Platforms, PassthroughCode: r.PassthroughCode,
		ResponseCode: r.ResponseCode, PassthroughBody: r.PassthroughBody, CustomMessage: r.CustomMessage,
		SkipMonitoring: r.SkipMonitoring, Description: r.Description, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if v.ErrorCodes == nil {
		v.ErrorCodes = []int{}
	}
	if v.Keywords == nil {
		v.Keywords = []string{}
	}
	if v.Platforms == nil {
		v.Platforms = []string{}
	}
	return v
}

// ruleInput is the body of POST and PATCH; absent fields keep their current (PATCH) or
// default (POST) value.
type ruleInput struct {
	Name            *string   `json:"name"`
	Enabled         *bool     `json:"enabled"`
	Priority        *int      `json:"priority"`
	ErrorCodes      *[]int    `json:"error_codes"`
	Keywords        *[]string `json:"keywords"`
	MatchMode       *string   `json:"match_mode"`
	Platforms       *[]string `json:"platforms"`
	PassthroughCode *bool     `json:"passthrough_code"`
	ResponseCode    *int      `json:"response_code"`
	PassthroughBody *bool     `json:"passthrough_body"`
	CustomMessage   *string   `json:"custom_message"`
	SkipMonitoring  *bool     `json:"skip_monitoring"`
	Description     *string   `json:"description"`
}

// defaultRule is what POST starts from.
func defaultRule() store.PassthroughRule {
	return store.PassthroughRule{Enabled: true, MatchMode: "any", PassthroughCode: true, PassthroughBody: true}
}

// apply checks the fields present in the input, copies them onto r and then checks the
// rule as a whole, so a PATCH is judged by the rule it produces.
func (in *ruleInput) apply(r *store.PassthroughRule, create bool) error {
	if err := checkName("name", in.Name, create); err != nil {
		return err
	}
	if err := checkPriority(in.Priority); err != nil {
		return err
	}
	if err := checkEnum("match_mode", in.MatchMode, matchModes); err != nil {
		return err
	}
	if in.Name != nil {
		r.Name = *in.Name
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if in.Priority != nil {
		r.Priority = *in.Priority
	}
	if in.MatchMode != nil {
		r.MatchMode = *in.MatchMode
	}
	if in.ErrorCodes != nil {
		codes, err := checkCodes(*in.ErrorCodes)
		if err != nil {
			return err
		}
		r.ErrorCodes = codes
	}
	if in.Keywords != nil {
		kws, err := checkKeywords(*in.Keywords)
		if err != nil {
			return err
		}
		r.Keywords = kws
	}
	if in.Platforms != nil {
		ps, err := checkPlatforms(*in.Platforms)
		if err != nil {
			return err
		}
		r.Platforms = ps
	}
	if in.PassthroughCode != nil {
		r.PassthroughCode = *in.PassthroughCode
	}
	if in.ResponseCode != nil {
		if *in.ResponseCode < minHTTPStatusCode || *in.ResponseCode > maxHTTPStatusCode {
			return invalid("response_code must be an HTTP status between %d and %d", minHTTPStatusCode, maxHTTPStatusCode)
		}
		v := *in.ResponseCode
		r.ResponseCode = &v
	}
	if in.PassthroughBody != nil {
		r.PassthroughBody = *in.PassthroughBody
	}
	if in.CustomMessage != nil {
		msg := strings.TrimSpace(*in.CustomMessage)
		if msg == "" {
			return invalid("custom_message must not be empty")
		}
		if utf8.RuneCountInString(msg) > maxRuleTextLen {
			return invalid("custom_message must be at most %d characters", maxRuleTextLen)
		}
		r.CustomMessage = &msg
	}
	if in.SkipMonitoring != nil {
		r.SkipMonitoring = *in.SkipMonitoring
	}
	if in.Description != nil {
		d := strings.TrimSpace(*in.Description)
		if utf8.RuneCountInString(d) > maxRuleTextLen {
			return invalid("description must be at most %d characters", maxRuleTextLen)
		}
		r.Description = d
	}
	return checkRule(r)
}

// checkRule enforces what a rule needs as a whole.
func checkRule(r *store.PassthroughRule) error {
	switch {
	case len(r.ErrorCodes) == 0 && len(r.Keywords) == 0:
		return invalid("error_codes or keywords: a rule needs at least one error code or keyword")
	case !r.PassthroughCode && r.ResponseCode == nil:
		return invalid("response_code is required when passthrough_code is false")
	case !r.PassthroughBody && r.CustomMessage == nil:
		return invalid("custom_message is required when passthrough_body is false")
	}
	return nil
}

// checkCodes validates and de-duplicates error_codes, keeping their order.
func checkCodes(in []int) ([]int, error) {
	if len(in) > maxRuleCodes {
		return nil, invalid("error_codes must have at most %d entries", maxRuleCodes)
	}
	out := make([]int, 0, len(in))
	seen := make(map[int]bool, len(in))
	for _, c := range in {
		if c < minHTTPStatusCode || c > maxHTTPStatusCode {
			return nil, invalid("error_codes must hold HTTP statuses between %d and %d, got %d", minHTTPStatusCode, maxHTTPStatusCode, c)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// checkKeywords trims keywords; empty ones are refused (an empty keyword would match
// every body).
func checkKeywords(in []string) ([]string, error) {
	if len(in) > maxRuleKeywords {
		return nil, invalid("keywords must have at most %d entries", maxRuleKeywords)
	}
	out := make([]string, 0, len(in))
	for _, k := range in {
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, invalid("keywords must not contain empty strings")
		}
		if err := checkLength("keywords entries", k); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func checkPlatforms(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, p := range in {
		p := p
		if err := checkEnum("platforms entries", &p, platforms); err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// rulesChanged is the hook of rule writes made by request r.
func (a *API) rulesChanged(r *http.Request) func() {
	return func() { notifyChanged(a, r, a.rules, "error passthrough rules") }
}

// notifyChanged tells every instance to reload what. The write is already stored: a failed
// notification is logged, and the other instances catch up on their periodic reload.
func notifyChanged(a *API, r *http.Request, n ChangeNotifier, what string) {
	if n == nil {
		return
	}
	if err := n.Changed(r.Context()); err != nil {
		a.log.WarnContext(r.Context(), "notifying change", "what", what, "error", err)
	}
}

// rule validates a POST body into a new rule, starting from defaultRule.
func (in *ruleInput) rule() (store.PassthroughRule, error) {
	rule := defaultRule()
	err := in.apply(&rule, true)
	return rule, err
}

func (a *API) createRule(w http.ResponseWriter, r *http.Request) {
	serveCreate(w, r, (*ruleInput).rule, a.st.CreatePassthroughRule, infallible(newRuleView), a.rulesChanged(r))
}

func (a *API) listRules(w http.ResponseWriter, r *http.Request) {
	p, err := readPage(r.URL.Query(), 2) // the cursor is (priority, id): the evaluation order
	if err != nil {
		writeError(w, r, err)
		return
	}
	rules, err := a.st.ListPassthroughRulesPage(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, p, rules, func(rl store.PassthroughRule) []int64 { return []int64{int64(rl.Priority), rl.ID} },
		infallible(newRuleView))
}

func (a *API) getRule(w http.ResponseWriter, r *http.Request) {
	serveByID(w, r, a.st.GetPassthroughRule, infallible(newRuleView))
}

// change is what a PATCH body does to the current rule. The store applies it inside its
// transaction, so the body is judged by the rule it produces.
func (in *ruleInput) change() (func(*store.PassthroughRule) error, error) {
	return func(cur *store.PassthroughRule) error { return in.apply(cur, false) }, nil
}

func (a *API) patchRule(w http.ResponseWriter, r *http.Request) {
	servePatch(w, r, (*ruleInput).change, a.st.UpdatePassthroughRule, infallible(newRuleView), a.rulesChanged(r))
}

func (a *API) deleteRule(w http.ResponseWriter, r *http.Request) {
	serveDelete(w, r, a.st.DeletePassthroughRule, a.rulesChanged(r))
}
