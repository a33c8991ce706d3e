package breaker

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/luapipe"
)

// Answer is an attempt an account answered.
type Answer struct {
	AccountID int64
	Model     string
	GrantID   string
}

// Succeed records answers in one pipelined round trip: each resets its account's dial
// back-off and closes a half-open breaker (or the probe's). closed counts the breakers
// closed.
func (b *Breakers) Succeed(ctx context.Context, answers []Answer, now time.Time) (closed int, err error) {
	if len(answers) == 0 {
		return 0, nil
	}
	var s *Success
	_, _ = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		s = b.QueueSucceed(ctx, p, answers, now)
		return nil
	}) // each call's outcome is in its reply: Success.Closed
	return s.Closed(ctx)
}

// Success is Succeed queued on a caller's pipeline (QueueSucceed); Closed reads its
// outcome once the pipeline ran.
type Success struct {
	rdb   redis.UniversalClient
	calls []*luapipe.Call
}

// QueueSucceed queues Succeed's script calls on p, so that a report batch records its
// answers in the round trip of its other reads; nil without answers.
func (b *Breakers) QueueSucceed(ctx context.Context, p redis.Pipeliner, answers []Answer, now time.Time) *Success {
	if len(answers) == 0 {
		return nil
	}
	s := &Success{rdb: b.rdb, calls: make([]*luapipe.Call, len(answers))}
	for i, a := range answers {
		s.calls[i] = luapipe.Queue(ctx, p, successScript, []string{Key(a.AccountID), dialKey(a.AccountID)}, a.Model, a.GrantID, now.UnixMilli())
	}
	return s
}

// Closed is the queued answers' outcome, after their pipeline ran: the breakers closed.
// Calls Redis refused with NOSCRIPT are re-sent, alone: the others ran.
func (s *Success) Closed(ctx context.Context) (closed int, err error) {
	if s == nil {
		return 0, nil
	}
	err = luapipe.Resend(ctx, s.rdb, s.calls)
	for _, c := range s.calls {
		if err != nil {
			break
		}
		n, cerr := c.Cmd().Int64()
		err = cerr
		if n == 1 {
			closed++
		}
	}
	if err != nil {
		return 0, fmt.Errorf("recording answers: %w", err)
	}
	return closed, nil
}
