package admission

import (
	"context"
	"log/slog"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/prices"
)

// unpricedNoteTimeout bounds counting an unpriced model: the count is for the operator's
// list, never worth holding the request up.
const unpricedNoteTimeout = 200 * time.Millisecond

// noteUnpriced counts a request of a model without a price (GET /api/v1/admin/prices/unpriced);
// a failure is logged and otherwise ignored.
func (s *Admitter) noteUnpriced(ctx context.Context, model string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unpricedNoteTimeout)
	defer cancel()
	if err := prices.NoteUnpriced(ctx, s.rdb, model, time.Now()); err != nil {
		s.log.Warn("counting an unpriced model", slog.String("model", model), slog.Any("error", err))
	}
}
