package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
)

// ErrKeyNotFound means no servable API key has that hash: it is unknown, disabled or
// deleted, or its user or group is disabled.
var ErrKeyNotFound = errors.New("api key not found or not active")

// KeyAuth is what admission needs to know about an API key, its user and its group.
type KeyAuth struct {
	KeyID           int64
	UserID          int64
	GroupID         int64
	UserConcurrency int
	BalanceMicros   int64
	Platform        string // the group's platform: openai | anthropic
	// RateMicros is the rate multiplier of the key's user in the group, fixed point
	// (1.0 = 1_000_000): the user's override from user_group_rates, else the group's.
	RateMicros int64
	// The group's deadline overrides in milliseconds (Group); nil = the plugin's default.
	FirstTokenTimeoutMs *int64
	StreamIdleTimeoutMs *int64
	// The group's model rules (GroupModelRules): its mapping as raw JSON, "" when empty.
	GroupModelMapping string
	RestrictModels    bool
	ClaudeCodeOnly    bool

	// Billing (docs/billing.md): the group's mode and estimate settings, and the key's
	// expiry (nil = never). The holds (package holds) check the money on their Redis copies; these cached
	// copies serve the cost estimate and refusals before any wait.
	BillingMode            string // BillingBalance | BillingSubscription
	AllowUnpriced          bool
	DefaultMaxOutputTokens int64
	MaxReserveMicros       int64
	CapOutputTokens        bool
	KeyExpiresAt           *time.Time

	// The group's header policy (GroupForwarding) as the grant carries it: ForwardBetas is
	// its list comma-separated, nil for the default list; UserAgent "" = the client's.
	ForwardBetas *string
	UserAgent    string

	// The group's failover settings (GroupFailover); nil = the gateway's default.
	// ModelFallbacks is its model_fallbacks as raw JSON, "" when there are none.
	ResponseHeaderTimeoutMs *int64
	HedgeAfterMs            *int64
	BreakerThreshold        *int64
	BreakerWindowMs         *int64
	BreakerCooldownMs       *int64
	ModelFallbacks          string
}

const sqlAuthenticateKey = `
SELECT k.id, k.user_id, k.group_id, u.concurrency, u.balance_micros, g.platform,
       (COALESCE(r.rate_multiplier, g.rate_multiplier) * 1000000)::bigint,
       g.first_token_timeout_ms, g.stream_idle_timeout_ms,
       g.billing_mode, g.allow_unpriced, g.default_max_output_tokens, g.max_reserve_micros, g.cap_output_tokens, k.expires_at,
       COALESCE(NULLIF(g.model_mapping, '{}'::jsonb)::text, ''), g.restrict_models, g.claude_code_only,
       array_to_string(g.forward_betas, ','), g.user_agent,
       g.response_header_timeout_ms, g.hedge_after_ms, g.breaker_threshold, g.breaker_window_ms, g.breaker_cooldown_ms,
       COALESCE(NULLIF(g.model_fallbacks, '{}'::jsonb)::text, '')
FROM api_keys k
JOIN users  u ON u.id = k.user_id
JOIN groups g ON g.id = k.group_id
LEFT JOIN user_group_rates r ON r.user_id = k.user_id AND r.group_id = k.group_id
WHERE k.key_hash = $1
  AND k.status = 'active' AND k.deleted_at IS NULL
  AND u.status = 'active'
  AND g.status = 'active'`

// AuthenticateKey finds the servable API key whose SHA-256 hex hash is keyHash.
func (s *Store) AuthenticateKey(ctx context.Context, keyHash string) (KeyAuth, error) {
	var a KeyAuth
	err := s.Pool.QueryRow(ctx, sqlAuthenticateKey, keyHash).Scan(
		&a.KeyID, &a.UserID, &a.GroupID, &a.UserConcurrency, &a.BalanceMicros, &a.Platform, &a.RateMicros,
		&a.FirstTokenTimeoutMs, &a.StreamIdleTimeoutMs,
		&a.BillingMode, &a.AllowUnpriced, &a.DefaultMaxOutputTokens, &a.MaxReserveMicros, &a.CapOutputTokens, &a.KeyExpiresAt,
		&a.GroupModelMapping, &a.RestrictModels, &a.ClaudeCodeOnly,
		&a.ForwardBetas, &a.UserAgent,
		&a.ResponseHeaderTimeoutMs, &a.HedgeAfterMs, &a.BreakerThreshold, &a.BreakerWindowMs, &a.BreakerCooldownMs,
		&a.ModelFallbacks)
	if errors.Is(err, pgx.ErrNoRows) {
		return KeyAuth{}, ErrKeyNotFound
	}
	if err != nil {
		return KeyAuth{}, fmt.Errorf("authenticating api key: %w", err)
	}
	return a, nil
}

// CandidateAccount is an active account of a group, as the scheduler sees it. Health
// deadlines are zero when unset.
type CandidateAccount struct {
	ID               int64
	BaseURL          string
	APIKey           string // credential.api_key, opened (credentials.go); never logged or returned by the admin API
	Concurrency      int
	Priority         int
	ModelMapping     []byte // raw JSON object
	RateLimitedUntil time.Time
	OverloadedUntil  time.Time
	PausedUntil      time.Time
	PauseReason      string // why it is paused, with PausedUntil (shown in routing explanations)
	LastUsedAt       time.Time
	// ModelBlocks maps the upstream models the account is blocked for to the end of the
	// block; only blocks in force when read, nil when none.
	ModelBlocks map[string]time.Time
	// Headers are the account's fixed upstream headers (migration 0010); nil when none.
	Headers map[string]string
}

const sqlGroupAccounts = `
SELECT a.id, a.base_url, COALESCE(a.credential->>'api_key', ''),
       a.credential_ciphertext, a.credential_nonce, COALESCE(a.credential_key_id, ''), a.concurrency, a.priority,
       a.model_mapping, a.rate_limited_until, a.overloaded_until, a.paused_until, a.last_used_at,
       COALESCE(a.pause_reason, ''),
       ARRAY(SELECT b.model FROM account_model_blocks b WHERE b.account_id = a.id AND b.blocked_until > now() ORDER BY b.model),
       ARRAY(SELECT b.blocked_until FROM account_model_blocks b WHERE b.account_id = a.id AND b.blocked_until > now() ORDER BY b.model),
       NULLIF(a.headers, '{}'::jsonb)
FROM account_groups ag
JOIN accounts a ON a.id = ag.account_id
WHERE ag.group_id = $1 AND a.platform = $2
  AND a.status = 'active' AND a.deleted_at IS NULL
ORDER BY a.id`

// GroupAccounts lists the active, not deleted accounts of a group on the given platform,
// whatever their health: the caller filters by health, so that "no account serves this
// model" can be told apart from "no account is available right now".
func (s *Store) GroupAccounts(ctx context.Context, groupID int64, platform string) ([]CandidateAccount, error) {
	rows, err := s.Pool.Query(ctx, sqlGroupAccounts, groupID, platform)
	if err != nil {
		return nil, fmt.Errorf("listing accounts of group %d: %w", groupID, err)
	}
	var out []CandidateAccount
	for rows.Next() {
		var a CandidateAccount
		var sealed credentials.Sealed
		var rl, ov, pa, lu *time.Time
		var blockedModels []string
		var blockedUntil []time.Time
		if err := rows.Scan(&a.ID, &a.BaseURL, &a.APIKey, &sealed.Ciphertext, &sealed.Nonce, &sealed.KeyID,
			&a.Concurrency, &a.Priority,
			&a.ModelMapping, &rl, &ov, &pa, &lu, &a.PauseReason, &blockedModels, &blockedUntil,
			&a.Headers); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading accounts of group %d: %w", groupID, err)
		}
		var err error
		if a.APIKey, err = s.openAPIKey(a.ID, a.APIKey, sealed); err != nil {
			rows.Close()
			return nil, err
		}
		a.RateLimitedUntil, a.OverloadedUntil, a.PausedUntil, a.LastUsedAt = deref(rl), deref(ov), deref(pa), deref(lu)
		for i := 0; i < len(blockedModels) && i < len(blockedUntil); i++ {
			if a.ModelBlocks == nil {
				a.ModelBlocks = make(map[string]time.Time, len(blockedModels))
			}
			a.ModelBlocks[blockedModels[i]] = blockedUntil[i]
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing accounts of group %d: %w", groupID, err)
	}
	return out, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

const (
	// The touches lock rows in id order and skip rows another transaction holds (a report
	// batch settling money locks keys and accounts in its own order): last_used_at is a
	// best-effort hint, never worth a lock wait or a deadlock.
	sqlTouchAccounts = `UPDATE accounts a SET last_used_at = GREATEST(COALESCE(a.last_used_at, $2), $2)
FROM (SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED) l WHERE a.id = l.id`
	sqlTouchAPIKeys = `UPDATE api_keys k SET last_used_at = GREATEST(COALESCE(k.last_used_at, $2), $2)
FROM (SELECT id FROM api_keys WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED) l WHERE k.id = l.id`
)

// TouchLastUsed records that accounts and API keys were used at the given time (never
// moving last_used_at backwards). Callers batch it off the request path.
// Each table is touched in its own transaction, so no lock is held across the two.
func (s *Store) TouchLastUsed(ctx context.Context, accountIDs, keyIDs []int64, at time.Time) error {
	if len(accountIDs) > 0 {
		if _, err := s.Pool.Exec(ctx, sqlTouchAccounts, accountIDs, at); err != nil {
			return fmt.Errorf("touching accounts' last_used_at: %w", err)
		}
	}
	if len(keyIDs) > 0 {
		if _, err := s.Pool.Exec(ctx, sqlTouchAPIKeys, keyIDs, at); err != nil {
			return fmt.Errorf("touching api keys' last_used_at: %w", err)
		}
	}
	return nil
}
