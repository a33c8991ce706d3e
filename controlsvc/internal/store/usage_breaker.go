package store

import (
	"context"
	"fmt"
)

// AttemptRef names one attempt of a request (attempt numbers from 1).
type AttemptRef struct {
	RequestID string
	Attempt   int
}

// SetBreakerOpen sets breaker_open on stored attempts, in one statement: for a report's last
// attempt, whose failure is marked after its record was written.
func (s *Store) SetBreakerOpen(ctx context.Context, refs []AttemptRef) error {
	ids := make([]string, len(refs))
	nums := make([]int32, len(refs))
	for i, r := range refs {
		ids[i], nums[i] = r.RequestID, int32(r.Attempt)
	}
	if _, err := s.Pool.Exec(ctx, sqlSetBreakerOpen, ids, nums); err != nil {
		return fmt.Errorf("setting breaker_open on %d attempts: %w", len(refs), err)
	}
	return nil
}
