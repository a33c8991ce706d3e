package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Group binds API keys to a platform and a pool of accounts, and sets the price multiplier
// and the stream deadlines of its requests.
type Group struct {
	ID             int64
	Name           string
	Platform       string // openai | anthropic
	RateMultiplier string // exact decimal text, e.g. "1.5"; NUMERIC(12,6) in the database
	Status         string
	// Per-group overrides of the plugin's stream deadlines (docs/design.md, "Timeouts"), in milliseconds:
	// nil keeps the plugin's default, 0 turns the deadline off.
	FirstTokenTimeoutMs *int64
	StreamIdleTimeoutMs *int64
	GroupModelRules
	GroupBilling
	GroupForwarding
	GroupFailover
	CreatedAt time.Time
	UpdatedAt time.Time
}

// GroupModelRules are the group's model rules (migration 0007; docs/design.md, "Group model
// rules and dispatch").
type GroupModelRules struct {
	// ModelMapping maps requested models to the model the group's accounts are asked for
	// ({"requested": "upstream"}, a trailing * matches by prefix); applied before each
	// account's own mapping. Never nil when read.
	ModelMapping map[string]string
	// RestrictModels serves only the models ModelMapping names.
	RestrictModels bool
	// ClaudeCodeOnly refuses every endpoint but /v1/messages (anthropic groups only).
	ClaudeCodeOnly bool
}

// GroupForwarding is what the group's requests carry upstream of the client's headers
// (migration 0010; docs/design.md, "Forwarded headers").
type GroupForwarding struct {
	// ForwardBetas lists the anthropic-beta / OpenAI-Beta tokens let through; nil = the
	// plugin's default list, empty = none.
	ForwardBetas []string
	// UserAgent is sent upstream instead of the client's User-Agent; "" = the client's.
	UserAgent string
}

// BetasPatch changes forward_betas when Set: to Betas, or back to NULL (the default list)
// when Betas is nil.
type BetasPatch struct {
	Set   bool
	Betas []string
}

// GroupBilling is how a group's requests are paid for (docs/billing.md).
type GroupBilling struct {
	BillingMode string // BillingBalance | BillingSubscription; "" on create = balance
	// Subscription window limits in micros; nil = no limit for that window.
	DailyLimitMicros   *int64
	WeeklyLimitMicros  *int64
	MonthlyLimitMicros *int64
	// AllowUnpriced serves models without a price (records flagged priced = false, cost 0).
	AllowUnpriced bool
	// DefaultMaxOutputTokens is the output estimate of a request that names no maximum;
	// 0 on create = DefaultMaxOutputTokens.
	DefaultMaxOutputTokens int
	// MaxReserveMicros caps one request's reservation; 0 on create = DefaultMaxReserveMicros.
	// It does not apply with CapOutputTokens: a capped reservation is no upper bound.
	MaxReserveMicros int64
	// CapOutputTokens sends a request that names no output maximum upstream with
	// DefaultMaxOutputTokens as its limit, so that its reservation covers what it can cost
	// (docs/billing.md, "Output cap").
	CapOutputTokens bool
}

// Billing modes of a group.
const (
	BillingBalance      = "balance"
	BillingSubscription = "subscription"
)

// Billing defaults and bounds (the column defaults and CHECKs of migration 0006).
const (
	DefaultMaxOutputTokens  = 4096
	MaxMaxOutputTokens      = 10_000_000
	DefaultMaxReserveMicros = 5_000_000
)

// MaxGroupTimeoutMs bounds the per-group deadlines (the CHECK of migration 0004): 30
// minutes, the plugin's default overall request deadline.
const MaxGroupTimeoutMs = 30 * 60 * 1000

// GroupPatch lists the fields to change; nil (or an unset MillisPatch) leaves a field as it
// is. The platform never changes: accounts and keys were attached for it.
type GroupPatch struct {
	Name              *string
	RateMultiplier    *string // exact decimal text
	Status            *string
	FirstTokenTimeout MillisPatch
	StreamIdleTimeout MillisPatch

	BillingMode            *string
	DailyLimit             MicrosPatch
	WeeklyLimit            MicrosPatch
	MonthlyLimit           MicrosPatch
	AllowUnpriced          *bool
	DefaultMaxOutputTokens *int
	MaxReserveMicros       *int64
	CapOutputTokens        *bool

	ModelMapping   *map[string]string
	RestrictModels *bool
	ClaudeCodeOnly *bool

	ForwardBetas BetasPatch
	UserAgent    *string

	Failover GroupFailoverPatch
}

// MicrosPatch changes a nullable money column when Set: to Micros, or to NULL when Micros
// is nil.
type MicrosPatch struct {
	Set    bool
	Micros *int64
}

// MillisPatch changes a nullable millisecond column when Set: to Ms, or back to NULL (the
// default) when Ms is nil.
type MillisPatch struct {
	Set bool
	Ms  *int64
}

// groupColumns reads rate_multiplier as text so no float ever touches it.
const groupColumns = `id, name, platform, rate_multiplier::text, status,
first_token_timeout_ms, stream_idle_timeout_ms,
billing_mode, daily_limit_micros, weekly_limit_micros, monthly_limit_micros, allow_unpriced,
default_max_output_tokens, max_reserve_micros, model_mapping, restrict_models, claude_code_only,
cap_output_tokens, created_at, updated_at,
forward_betas IS NOT NULL, COALESCE(forward_betas, '{}'), user_agent,
response_header_timeout_ms, hedge_after_ms, breaker_threshold, breaker_window_ms, breaker_cooldown_ms,
model_fallbacks`

const (
	sqlInsertGroup = `
INSERT INTO groups (name, platform, rate_multiplier, status, first_token_timeout_ms, stream_idle_timeout_ms,
    billing_mode, daily_limit_micros, weekly_limit_micros, monthly_limit_micros, allow_unpriced,
    default_max_output_tokens, max_reserve_micros, model_mapping, restrict_models, claude_code_only,
    cap_output_tokens, forward_betas, user_agent,
    response_header_timeout_ms, hedge_after_ms, breaker_threshold, breaker_window_ms, breaker_cooldown_ms,
    model_fallbacks)
VALUES ($1, $2, $3::text::numeric, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
    $18::text[], $19, $20, $21, $22, $23, $24, $25::jsonb)
RETURNING ` + groupColumns

	sqlUpdateGroup = `
UPDATE groups SET
    name                   = COALESCE($2, name),
    rate_multiplier        = COALESCE($3::text::numeric, rate_multiplier),
    status                 = COALESCE($4, status),
    first_token_timeout_ms = CASE WHEN $5::boolean THEN $6::integer ELSE first_token_timeout_ms END,
    stream_idle_timeout_ms = CASE WHEN $7::boolean THEN $8::integer ELSE stream_idle_timeout_ms END,
    billing_mode           = COALESCE($9, billing_mode),
    daily_limit_micros     = CASE WHEN $10::boolean THEN $11::bigint ELSE daily_limit_micros END,
    weekly_limit_micros    = CASE WHEN $12::boolean THEN $13::bigint ELSE weekly_limit_micros END,
    monthly_limit_micros   = CASE WHEN $14::boolean THEN $15::bigint ELSE monthly_limit_micros END,
    allow_unpriced         = COALESCE($16, allow_unpriced),
    default_max_output_tokens = COALESCE($17::integer, default_max_output_tokens),
    max_reserve_micros     = COALESCE($18::bigint, max_reserve_micros),
    model_mapping          = COALESCE($19::jsonb, model_mapping),
    restrict_models        = COALESCE($20, restrict_models),
    claude_code_only       = COALESCE($21, claude_code_only),
    cap_output_tokens      = COALESCE($22, cap_output_tokens),
    forward_betas          = CASE WHEN $23::boolean THEN $24::text[] ELSE forward_betas END,
    user_agent             = COALESCE($25, user_agent),
    response_header_timeout_ms = CASE WHEN $26::boolean THEN $27::integer ELSE response_header_timeout_ms END,
    hedge_after_ms         = CASE WHEN $28::boolean THEN $29::integer ELSE hedge_after_ms END,
    breaker_threshold      = CASE WHEN $30::boolean THEN $31::integer ELSE breaker_threshold END,
    breaker_window_ms      = CASE WHEN $32::boolean THEN $33::integer ELSE breaker_window_ms END,
    breaker_cooldown_ms    = CASE WHEN $34::boolean THEN $35::integer ELSE breaker_cooldown_ms END,
    model_fallbacks        = COALESCE($36::jsonb, model_fallbacks),
    updated_at             = now()
WHERE id = $1
RETURNING ` + groupColumns

	sqlGetGroup   = `SELECT ` + groupColumns + ` FROM groups WHERE id = $1`
	sqlListGroups = `SELECT ` + groupColumns + ` FROM groups WHERE id > $1 ORDER BY id LIMIT $2`

	// sqlGroupPlatforms resolves group ids for reference checks.
	sqlGroupPlatforms = `SELECT id, platform FROM groups WHERE id = ANY($1)`
)

func scanGroup(row pgx.Row) (Group, error) {
	var g Group
	var hasBetas bool
	var betas []string
	err := row.Scan(&g.ID, &g.Name, &g.Platform, &g.RateMultiplier, &g.Status,
		&g.FirstTokenTimeoutMs, &g.StreamIdleTimeoutMs,
		&g.BillingMode, &g.DailyLimitMicros, &g.WeeklyLimitMicros, &g.MonthlyLimitMicros, &g.AllowUnpriced,
		&g.DefaultMaxOutputTokens, &g.MaxReserveMicros, &g.ModelMapping, &g.RestrictModels, &g.ClaudeCodeOnly,
		&g.CapOutputTokens, &g.CreatedAt, &g.UpdatedAt,
		&hasBetas, &betas, &g.UserAgent,
		&g.ResponseHeaderTimeoutMs, &g.HedgeAfterMs, &g.BreakerThreshold, &g.BreakerWindowMs, &g.BreakerCooldownMs,
		&g.ModelFallbacks)
	if g.ModelMapping == nil {
		g.ModelMapping = map[string]string{}
	}
	if g.ModelFallbacks == nil {
		g.ModelFallbacks = map[string]ModelFallback{}
	}
	g.ForwardBetas = betasOrDefault(hasBetas, betas)
	return g, err
}

// CreateGroup inserts g (ID and timestamps are ignored). A duplicate name is a ConflictError.
func (s *Store) CreateGroup(ctx context.Context, g Group) (Group, error) {
	b := g.GroupBilling.withDefaults()
	mapping := g.ModelMapping
	if mapping == nil {
		mapping = map[string]string{}
	}
	out, err := scanGroup(s.Pool.QueryRow(ctx, sqlInsertGroup, g.Name, g.Platform, g.RateMultiplier, g.Status,
		g.FirstTokenTimeoutMs, g.StreamIdleTimeoutMs,
		b.BillingMode, b.DailyLimitMicros, b.WeeklyLimitMicros, b.MonthlyLimitMicros, b.AllowUnpriced,
		b.DefaultMaxOutputTokens, b.MaxReserveMicros, mapping, g.RestrictModels, g.ClaudeCodeOnly,
		b.CapOutputTokens, betasArg(g.ForwardBetas), g.UserAgent,
		g.ResponseHeaderTimeoutMs, g.HedgeAfterMs, g.BreakerThreshold, g.BreakerWindowMs, g.BreakerCooldownMs,
		fallbacksJSON(g.ModelFallbacks)))
	if pgCode(err) == pgUniqueViolation {
		return Group{}, &ConflictError{Message: fmt.Sprintf("a group named %q already exists", g.Name)}
	}
	if ie := groupRuleViolation(err); ie != nil {
		return Group{}, ie
	}
	if err != nil {
		return Group{}, fmt.Errorf("inserting group: %w", err)
	}
	return out, nil
}

// withDefaults fills the zero values that stand for "the default".
func (b GroupBilling) withDefaults() GroupBilling {
	if b.BillingMode == "" {
		b.BillingMode = BillingBalance
	}
	if b.DefaultMaxOutputTokens == 0 {
		b.DefaultMaxOutputTokens = DefaultMaxOutputTokens
	}
	if b.MaxReserveMicros == 0 {
		b.MaxReserveMicros = DefaultMaxReserveMicros
	}
	return b
}

// GetGroup returns the group with that id.
func (s *Store) GetGroup(ctx context.Context, id int64) (Group, error) {
	g, err := scanGroup(s.Pool.QueryRow(ctx, sqlGetGroup, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Group{}, &NotFoundError{Resource: "group", ID: id}
	}
	if err != nil {
		return Group{}, fmt.Errorf("reading group %d: %w", id, err)
	}
	return g, nil
}

// UpdateGroup applies p to the group with that id and returns the result. A name taken by
// another group is a ConflictError.
func (s *Store) UpdateGroup(ctx context.Context, id int64, p GroupPatch) (Group, error) {
	var mapping any // untyped nil → SQL NULL → COALESCE keeps the column
	if p.ModelMapping != nil {
		m := *p.ModelMapping
		if m == nil {
			m = map[string]string{}
		}
		mapping = m
	}
	f := p.Failover
	g, err := scanGroup(s.Pool.QueryRow(ctx, sqlUpdateGroup, id, p.Name, p.RateMultiplier, p.Status,
		p.FirstTokenTimeout.Set, p.FirstTokenTimeout.Ms, p.StreamIdleTimeout.Set, p.StreamIdleTimeout.Ms,
		p.BillingMode, p.DailyLimit.Set, p.DailyLimit.Micros, p.WeeklyLimit.Set, p.WeeklyLimit.Micros,
		p.MonthlyLimit.Set, p.MonthlyLimit.Micros, p.AllowUnpriced, p.DefaultMaxOutputTokens, p.MaxReserveMicros,
		mapping, p.RestrictModels, p.ClaudeCodeOnly, p.CapOutputTokens,
		p.ForwardBetas.Set, betasArg(p.ForwardBetas.Betas), p.UserAgent,
		f.ResponseHeaderTimeout.Set, f.ResponseHeaderTimeout.Ms, f.HedgeAfter.Set, f.HedgeAfter.Ms,
		f.BreakerThreshold.Set, f.BreakerThreshold.Ms, f.BreakerWindow.Set, f.BreakerWindow.Ms,
		f.BreakerCooldown.Set, f.BreakerCooldown.Ms, fallbacksArg(f.ModelFallbacks)))
	ie := groupRuleViolation(err)
	switch {
	case ie != nil:
		return Group{}, ie
	case errors.Is(err, pgx.ErrNoRows):
		return Group{}, &NotFoundError{Resource: "group", ID: id}
	case pgCode(err) == pgUniqueViolation && p.Name != nil:
		return Group{}, &ConflictError{Message: fmt.Sprintf("a group named %q already exists", *p.Name)}
	case err != nil:
		return Group{}, fmt.Errorf("updating group %d: %w", id, err)
	}
	return g, nil
}

// ListGroups returns a page of the groups, oldest first (Page).
func (s *Store) ListGroups(ctx context.Context, p Page) ([]Group, error) {
	rows, err := s.Pool.Query(ctx, sqlListGroups, p.after(0), p.fetch())
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Group, error) { return scanGroup(r) })
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	return groups, nil
}

// pgCheckViolation is the SQLSTATE of a failed CHECK constraint.
const pgCheckViolation = "23514"

// groupRuleViolation turns a violation of migration 0007's rules into the InvalidError of
// the field the admin set; nil for any other error. The rules hold on the row as a whole, so
// a PATCH of one field is checked against the others' stored values.
func groupRuleViolation(err error) *InvalidError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgCheckViolation {
		return nil
	}
	switch pgErr.ConstraintName {
	case "groups_restrict_models_mapping":
		return &InvalidError{Field: "restrict_models",
			Message: "needs a non-empty model_mapping: a restricted group serves only the models its mapping names"}
	case "groups_claude_code_only_platform":
		return &InvalidError{Field: "claude_code_only",
			Message: "is only allowed on anthropic groups: it leaves /v1/messages as the only endpoint"}
	}
	return nil
}

// groupPlatforms maps each existing id of ids to its group's platform.
func groupPlatforms(ctx context.Context, q pgx.Tx, ids []int64) (map[int64]string, error) {
	rows, err := q.Query(ctx, sqlGroupPlatforms, ids)
	if err != nil {
		return nil, fmt.Errorf("resolving groups: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]string, len(ids))
	for rows.Next() {
		var id int64
		var platform string
		if err := rows.Scan(&id, &platform); err != nil {
			return nil, fmt.Errorf("resolving groups: %w", err)
		}
		out[id] = platform
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("resolving groups: %w", err)
	}
	return out, nil
}

// betasArg is forward_betas as a query argument: SQL NULL (the default list) for nil.
func betasArg(betas []string) any {
	if betas == nil {
		return nil
	}
	return betas
}

// betasOrDefault is the stored forward_betas: nil when NULL, never nil when set.
func betasOrDefault(set bool, betas []string) []string {
	if !set {
		return nil
	}
	if betas == nil {
		return []string{}
	}
	return betas
}
