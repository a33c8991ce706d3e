package holds

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Pending is a reserve sent inside a caller's pipeline (ReserveIn), so that admission's
// slot grant and hold share one round trip (docs/billing.md).
type Pending struct {
	r   Request
	now time.Time
	cmd *redis.Cmd
}

// ReserveIn queues r's reserve into p, for wallets already loaded; nil when r must go
// through Reserve (an expired key, refused in Go). The script runs after what p holds
// before it, on the same node (holds need one Redis node anyway).
func (h *Holds) ReserveIn(ctx context.Context, p redis.Pipeliner, r Request) *Pending {
	now := time.Now()
	if r.KeyExpiresAt != nil && !now.Before(*r.KeyExpiresAt) {
		return nil
	}
	args := h.reserveArgs(r, now, false, newToken(), nil)
	return &Pending{r: r, now: now, cmd: reserveScript.EvalSha(ctx, p, walletKeys(r), args...)}
}

// Result is Reserve's answer to a pipelined reserve; done is false when it decided
// nothing (a wallet to load, the script not cached by Redis, a reply the pipeline lost)
// and nothing is held: the caller then calls Reserve.
func (pd *Pending) Result() (hold Hold, refusal *store.BillingRefusal, done bool, err error) {
	if pd == nil {
		return Hold{}, nil, false, nil
	}
	res, err := pd.cmd.StringSlice()
	if err != nil || len(res) == 0 || res[0] == "load" {
		return Hold{}, nil, false, nil
	}
	hold, refusal, err = reserveResult(pd.r, res, pd.now)
	return hold, refusal, true, err
}
