package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// UserGroupRate is a user's own rate multiplier in a group, overriding the group's.
type UserGroupRate struct {
	UserID         int64
	GroupID        int64
	RateMultiplier string // exact decimal text, NUMERIC(12,6)
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

const userGroupRateColumns = `user_id, group_id, rate_multiplier::text, created_at, updated_at`

const (
	sqlUpsertUserGroupRate = `
INSERT INTO user_group_rates (user_id, group_id, rate_multiplier)
VALUES ($1, $2, $3::text::numeric)
ON CONFLICT (user_id, group_id) DO UPDATE
SET rate_multiplier = EXCLUDED.rate_multiplier, updated_at = now()
RETURNING ` + userGroupRateColumns

	sqlDeleteUserGroupRate = `DELETE FROM user_group_rates WHERE user_id = $1 AND group_id = $2`

	sqlListUserGroupRates = `SELECT ` + userGroupRateColumns + ` FROM user_group_rates WHERE user_id = $1 AND group_id > $2 ORDER BY group_id LIMIT $3`
)

func scanUserGroupRate(row pgx.Row) (UserGroupRate, error) {
	var r UserGroupRate
	err := row.Scan(&r.UserID, &r.GroupID, &r.RateMultiplier, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

// SetUserGroupRate sets the user's rate multiplier in the group (exact decimal text),
// creating or replacing the override. An unknown user or group is a NotFoundError: both
// are in the path of the resource.
func (s *Store) SetUserGroupRate(ctx context.Context, userID, groupID int64, rate string) (UserGroupRate, error) {
	var out UserGroupRate
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		if err := userAndGroupExist(ctx, tx, userID, groupID); err != nil {
			return err
		}
		var err error
		out, err = scanUserGroupRate(tx.QueryRow(ctx, sqlUpsertUserGroupRate, userID, groupID, rate))
		return err
	})
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return UserGroupRate{}, err
	}
	if err != nil {
		return UserGroupRate{}, fmt.Errorf("setting rate of user %d in group %d: %w", userID, groupID, err)
	}
	return out, nil
}

// DeleteUserGroupRate removes the override; the group's rate applies again. No override is
// a NotFoundError.
func (s *Store) DeleteUserGroupRate(ctx context.Context, userID, groupID int64) error {
	tag, err := s.Pool.Exec(ctx, sqlDeleteUserGroupRate, userID, groupID)
	if err != nil {
		return fmt.Errorf("deleting rate of user %d in group %d: %w", userID, groupID, err)
	}
	if tag.RowsAffected() == 0 {
		return &NotFoundError{Resource: fmt.Sprintf("rate override of user %d in group", userID), ID: groupID}
	}
	return nil
}

// ListUserGroupRates returns a page of the user's overrides by group id (Page: the
// cursor is the group id). An unknown user is a
// NotFoundError.
func (s *Store) ListUserGroupRates(ctx context.Context, userID int64, p Page) ([]UserGroupRate, error) {
	return listOfUser(ctx, s, "listing rates", userID, scanUserGroupRate, sqlListUserGroupRates, userID, p.after(0), p.fetch())
}

// userAndGroupExist turns a missing user or group into a NotFoundError.
func userAndGroupExist(ctx context.Context, tx pgx.Tx, userID, groupID int64) error {
	var userOK, groupOK bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), EXISTS (SELECT 1 FROM groups WHERE id = $2)`,
		userID, groupID).Scan(&userOK, &groupOK); err != nil {
		return fmt.Errorf("checking user %d and group %d: %w", userID, groupID, err)
	}
	if !userOK {
		return &NotFoundError{Resource: "user", ID: userID}
	}
	if !groupOK {
		return &NotFoundError{Resource: "group", ID: groupID}
	}
	return nil
}
