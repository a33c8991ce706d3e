package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// UserGroup is a user in a group, the key of a rate.
type UserGroup struct {
	UserID  int64
	GroupID int64
}

// GroupTerms are what settlement needs of a user × group to price a record: the rate and
// the output limit a reservation counted (docs/billing.md, "Reserve, then settle").
type GroupTerms struct {
	// RateMicros is the rate multiplier in fixed point (1.0 = 1_000_000): the user's
	// override in the group (user_group_rates), else the group's rate.
	RateMicros int64
	// DefaultMaxOutputTokens is the output a reservation counts for a request that names
	// no maximum.
	DefaultMaxOutputTokens int64
	// CapOutputTokens: the group's reservations count one input token per body byte.
	CapOutputTokens bool
}

// sqlGroupTerms reads the terms of each user × group pair. Pairs whose group does not
// exist are left out.
const sqlGroupTerms = `
SELECT t.user_id, t.group_id, (COALESCE(r.rate_multiplier, g.rate_multiplier) * 1000000)::bigint,
       g.default_max_output_tokens, g.cap_output_tokens
FROM unnest($1::bigint[], $2::bigint[]) AS t(user_id, group_id)
JOIN groups g ON g.id = t.group_id
LEFT JOIN user_group_rates r ON r.user_id = t.user_id AND r.group_id = t.group_id`

// GroupTerms returns the terms of each pair; pairs whose group does not exist are missing
// from the map. One round trip for any number of pairs.
func (s *Store) GroupTerms(ctx context.Context, pairs []UserGroup) (map[UserGroup]GroupTerms, error) {
	out := make(map[UserGroup]GroupTerms, len(pairs))
	if len(pairs) == 0 {
		return out, nil
	}
	users := make([]int64, len(pairs))
	groups := make([]int64, len(pairs))
	for i, p := range pairs {
		users[i], groups[i] = p.UserID, p.GroupID
	}
	rows, err := s.Pool.Query(ctx, sqlGroupTerms, users, groups)
	if err != nil {
		return nil, fmt.Errorf("reading group terms: %w", err)
	}
	var (
		p     UserGroup
		terms GroupTerms
	)
	_, err = pgx.ForEachRow(rows, []any{&p.UserID, &p.GroupID, &terms.RateMicros, &terms.DefaultMaxOutputTokens,
		&terms.CapOutputTokens}, func() error {
		out[p] = terms
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading group terms: %w", err)
	}
	return out, nil
}
