package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PassthroughRule is one row of error_passthrough_rules: a rewrite of the client's answer to
// an upstream error (docs/design.md, "POST /internal/v1/upstream-error"; semantics in
// package rules).
type PassthroughRule struct {
	ID              int64
	Name            string
	Enabled         bool
	Priority        int
	ErrorCodes      []int
	Keywords        []string
	MatchMode       string // any | all
	Platforms       []string
	PassthroughCode bool
	ResponseCode    *int // required when PassthroughCode is false
	PassthroughBody bool
	CustomMessage   *string // required when PassthroughBody is false
	SkipMonitoring  bool
	Description     string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

const ruleColumns = `id, name, enabled, priority, error_codes, keywords, match_mode, platforms,
passthrough_code, response_code, passthrough_body, custom_message, skip_monitoring, description,
created_at, updated_at`

const (
	sqlInsertRule = `
INSERT INTO error_passthrough_rules (name, enabled, priority, error_codes, keywords, match_mode, platforms,
    passthrough_code, response_code, passthrough_body, custom_message, skip_monitoring, description)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING ` + ruleColumns

	sqlGetRule          = `SELECT ` + ruleColumns + ` FROM error_passthrough_rules WHERE id = $1`
	sqlGetRuleForUpdate = sqlGetRule + ` FOR UPDATE`
	// sqlListRules is in evaluation order.
	sqlListRules = `SELECT ` + ruleColumns + ` FROM error_passthrough_rules ORDER BY priority, id`
	// sqlListRulesPage is one page of them: after (priority $1, id $2) unless $3 (the first).
	sqlListRulesPage = `SELECT ` + ruleColumns + ` FROM error_passthrough_rules
WHERE $3 OR (priority, id) > ($1, $2) ORDER BY priority, id LIMIT $4`

	sqlUpdateRule = `
UPDATE error_passthrough_rules SET name = $2, enabled = $3, priority = $4, error_codes = $5, keywords = $6,
    match_mode = $7, platforms = $8, passthrough_code = $9, response_code = $10, passthrough_body = $11,
    custom_message = $12, skip_monitoring = $13, description = $14, updated_at = now()
WHERE id = $1
RETURNING ` + ruleColumns

	sqlDeleteRule = `DELETE FROM error_passthrough_rules WHERE id = $1`
)

func scanRule(row pgx.Row) (PassthroughRule, error) {
	var r PassthroughRule
	err := row.Scan(&r.ID, &r.Name, &r.Enabled, &r.Priority, &r.ErrorCodes, &r.Keywords, &r.MatchMode,
		&r.Platforms, &r.PassthroughCode, &r.ResponseCode, &r.PassthroughBody, &r.CustomMessage,
		&r.SkipMonitoring, &r.Description, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

// ruleArgs are the writable columns in the order of sqlInsertRule. Nil lists are stored as
// empty arrays (the columns are NOT NULL).
func ruleArgs(r PassthroughRule) []any {
	codes, keywords, platforms := r.ErrorCodes, r.Keywords, r.Platforms
	if codes == nil {
		codes = []int{}
	}
	if keywords == nil {
		keywords = []string{}
	}
	if platforms == nil {
		platforms = []string{}
	}
	return []any{r.Name, r.Enabled, r.Priority, codes, keywords, r.MatchMode, platforms,
		r.PassthroughCode, r.ResponseCode, r.PassthroughBody, r.CustomMessage, r.SkipMonitoring, r.Description}
}

// CreatePassthroughRule inserts r (ID and timestamps are ignored). The caller validates;
// the table's CHECK constraints are the last line of defence.
func (s *Store) CreatePassthroughRule(ctx context.Context, r PassthroughRule) (PassthroughRule, error) {
	out, err := scanRule(s.Pool.QueryRow(ctx, sqlInsertRule, ruleArgs(r)...))
	if err != nil {
		return PassthroughRule{}, fmt.Errorf("inserting error passthrough rule: %w", err)
	}
	return out, nil
}

// GetPassthroughRule returns the rule with that id.
func (s *Store) GetPassthroughRule(ctx context.Context, id int64) (PassthroughRule, error) {
	r, err := scanRule(s.Pool.QueryRow(ctx, sqlGetRule, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return PassthroughRule{}, &NotFoundError{Resource: "error passthrough rule", ID: id}
	}
	if err != nil {
		return PassthroughRule{}, fmt.Errorf("reading error passthrough rule %d: %w", id, err)
	}
	return r, nil
}

// ListPassthroughRules returns every rule, enabled or not, in evaluation order: priority
// ascending, then id.
func (s *Store) ListPassthroughRules(ctx context.Context) ([]PassthroughRule, error) {
	rows, err := s.Pool.Query(ctx, sqlListRules)
	if err != nil {
		return nil, fmt.Errorf("listing error passthrough rules: %w", err)
	}
	rules, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PassthroughRule, error) { return scanRule(r) })
	if err != nil {
		return nil, fmt.Errorf("listing error passthrough rules: %w", err)
	}
	return rules, nil
}

// ListPassthroughRulesPage returns a page of the rules in evaluation order (Page: the
// cursor is the last rule's priority and id).
func (s *Store) ListPassthroughRulesPage(ctx context.Context, p Page) ([]PassthroughRule, error) {
	rows, err := s.Pool.Query(ctx, sqlListRulesPage, p.after(0), p.after(1), len(p.After) == 0, p.fetch())
	if err != nil {
		return nil, fmt.Errorf("listing error passthrough rules: %w", err)
	}
	rules, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PassthroughRule, error) { return scanRule(r) })
	if err != nil {
		return nil, fmt.Errorf("listing error passthrough rules: %w", err)
	}
	return rules, nil
}

// UpdatePassthroughRule applies change to the current rule under a row lock and stores the
// result, so that a partial update is validated against the rule it actually changes. An
// error from change is returned as it is and nothing is written.
func (s *Store) UpdatePassthroughRule(ctx context.Context, id int64, change func(*PassthroughRule) error) (PassthroughRule, error) {
	var out PassthroughRule
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanRule(tx.QueryRow(ctx, sqlGetRuleForUpdate, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return &NotFoundError{Resource: "error passthrough rule", ID: id}
		}
		if err != nil {
			return fmt.Errorf("reading error passthrough rule %d: %w", id, err)
		}
		if err := change(&cur); err != nil {
			return err
		}
		args := append([]any{id}, ruleArgs(cur)...)
		out, err = scanRule(tx.QueryRow(ctx, sqlUpdateRule, args...))
		if err != nil {
			return fmt.Errorf("updating error passthrough rule %d: %w", id, err)
		}
		return nil
	})
	return out, err
}

// DeletePassthroughRule removes the rule; nothing refers to rules, so the delete is hard.
func (s *Store) DeletePassthroughRule(ctx context.Context, id int64) error {
	tag, err := s.Pool.Exec(ctx, sqlDeleteRule, id)
	if err != nil {
		return fmt.Errorf("deleting error passthrough rule %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return &NotFoundError{Resource: "error passthrough rule", ID: id}
	}
	return nil
}
