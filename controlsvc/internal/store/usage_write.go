package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// UsageWrite is one usage record as the reports endpoint writes it: the request as the
// client saw it, priced by the usage of the attempt that answered (the last), and every
// upstream attempt (docs/billing.md, "Ledger").
type UsageWrite struct {
	RequestID     string
	GrantID       string
	UserID        int64
	APIKeyID      int64
	GroupID       int64
	AccountID     int64 // the last attempt's account; 0 = none (stored as NULL)
	Path          string
	Model         string
	UpstreamModel string
	// ServedModel is the model a group's fallback served instead of Model (client
	// namespace); "" = Model itself (stored as NULL).
	ServedModel string
	// Warnings are what a converted request could not carry over; nil = none (NULL).
	Warnings   []string
	Stream     bool
	Status     int
	ErrorClass string

	InputTokens         int64 // exclusive of cache tokens
	OutputTokens        int64 // including ReasoningTokens
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64 // part of OutputTokens, informational
	// UsageSource says where the tokens come from: UsageUpstream (the upstream's usage) or
	// UsageEstimate (billed by estimate); "" = UsageUpstream.
	UsageSource string

	Priced               bool  // false: no price for the model, every cost is 0
	CostMicros           int64 // billed to the user; the sum of the four bucket costs
	InputCostMicros      int64
	OutputCostMicros     int64
	CacheReadCostMicros  int64
	CacheWriteCostMicros int64
	RateMicros           int64 // rate multiplier applied, fixed point (1.0 = 1_000_000)

	AdmissionMs  int64
	UpstreamMs   int64
	FirstTokenMs int64
	DurationMs   int64

	Attempts []AttemptWrite // in order; attempt numbers are the positions, from 1

	// Routing is the request's routing explanation, a JSON array (package routing); nil =
	// none (stored as NULL).
	Routing []byte

	// Held is the request's hold in Redis (package holds), read by the reports endpoint:
	// its holder decides a mismatch refusal and it names what settlement charges; nil =
	// none. Granted: the caller vouches that the request was admitted though it holds
	// nothing (Redis lost its holds lately, docs/billing.md), so it is not refused Ungranted.
	Held    *HeldRef
	Granted bool
}

// AttemptWrite is one upstream attempt of a request.
type AttemptWrite struct {
	AccountID           int64 // 0 = none (stored as NULL)
	Status              int   // upstream status; 0 when none came (transport error, deadline)
	ErrorClass          string
	InputTokens         int64
	OutputTokens        int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64
	CostMicros          int64 // list price × rate; added to the account's usage_cost_micros
	LatencyMs           int64
	FirstTokenMs        int64
	UsageSource         string // as UsageWrite's; "" = UsageUpstream
	// Why the attempt ended, besides status and error class (docs/design.md,
	// "Routing explanations"): its failure
	// opened its (account, model) breaker; it was cancelled because the other hedged
	// attempt won; it failed and the next attempt went to the same account.
	BreakerOpen        bool
	HedgeLost          bool
	RetriedSameAccount bool
}

// Usage sources of a record (usage_records.usage_source, usage_attempts.usage_source).
const (
	UsageUpstream = "upstream" // the upstream's own usage
	UsageEstimate = "estimate" // committed to the client without complete usage: billed by estimate
)

// sourceOr is a usage source as stored: "" is the upstream's.
func sourceOr(src string) string {
	if src == "" {
		return UsageUpstream
	}
	return src
}

// RefusedWrite is a record WriteUsageBatch refused because its request's hold belongs to
// another user, key or group: it was neither stored nor charged, and the hold stays (the
// sweeper releases it).
type RefusedWrite struct {
	RequestID string
	// The hold's holder.
	UserID   int64
	APIKeyID int64
	GroupID  int64
	// Ungranted: the request has no hold and no record (WriteGrantedUsageBatch), so
	// it was never admitted; the holder fields are 0.
	Ungranted bool
}

// ErrGroupNotFound means no group has that id.
var ErrGroupNotFound = errors.New("group not found")

// WriteUsage writes one record as WriteUsageBatch does; inserted is false for a replay
// and for a record refused because its hold belongs to another user, key or group.
func (s *Store) WriteUsage(ctx context.Context, u UsageWrite) (inserted bool, err error) {
	ins, _, err := s.WriteUsageBatch(ctx, []UsageWrite{u})
	if err != nil {
		return false, err
	}
	return ins[u.RequestID], nil
}

// WriteUsageBatch writes a batch of usage records in one transaction:
//
//  1. one statement refuses the records whose request holds a hold of another user, key or
//     group (refused: not stored, not charged, the hold kept), inserts the
//     others with their attempts, served models and warnings, each table in one multi-row
//     insert from unnest: a record goes in only when its request id goes into
//     usage_request_ids (ON CONFLICT (request_id) DO NOTHING), the unique key of the
//     month-partitioned ledger (migration 0021);
//  2. one round trip locks the users of the inserted records (ascending id, so that
//     concurrent batches lock users in the same order) and the subscriptions they charge,
//     and reads their groups' billing modes and keys' quotas; each record's hold (Held),
//     matching the record's user, key and group, names the billing mode and subscription
//     charged;
//  3. the round trip of the COMMIT applies the charges, summed per row (one update per
//     affected user balance, subscription and key), stores how each record was charged and
//     adds the inserted attempts' costs to their accounts (ascending account id, for the
//     same reason).
//
// It is idempotent on RequestID within the batch (the first record of a request_id wins)
// and across batches: a replayed record inserts nothing and charges nothing. inserted holds
// the request ids stored by this call. Either everything is written or nothing is.
func (s *Store) WriteUsageBatch(ctx context.Context, batch []UsageWrite) (inserted map[string]bool, refused []RefusedWrite, err error) {
	return s.writeUsageBatch(ctx, batch, false)
}

// WriteGrantedUsageBatch is WriteUsageBatch for the reports endpoint: it also refuses
// (Ungranted) every record of a request that holds no hold, is not Granted and has no
// record yet, a request controlsvc never admitted (docs/design.md, "/internal/v1/reports").
// A hold the sweeper released after POOLGATE_RESERVATION_TTL counts as none.
func (s *Store) WriteGrantedUsageBatch(ctx context.Context, batch []UsageWrite) (inserted map[string]bool, refused []RefusedWrite, err error) {
	return s.writeUsageBatch(ctx, batch, true)
}

func (s *Store) writeUsageBatch(ctx context.Context, batch []UsageWrite, granted bool) (inserted map[string]bool, refused []RefusedWrite, err error) {
	inserted = make(map[string]bool, len(batch))
	if len(batch) == 0 {
		return inserted, nil, nil
	}
	byID := make(map[string]*UsageWrite, len(batch))
	cols := newUsageColumns(len(batch))
	for i := range batch {
		u := &batch[i]
		if _, dup := byID[u.RequestID]; dup {
			continue
		}
		byID[u.RequestID] = u
		cols.add(u)
	}
	err = s.withPipelinedTx(ctx, func(tx *pipelinedTx) error {
		var ids, misIDs, unkIDs []string
		var accounts, costs, misUsers, misKeys, misGroups []int64
		// $45: whether a record needs a grant; $46: the billing time zone, whose calendar days
		// the keys' daily totals count.
		args := append(cols.args(), granted, billing.Location().String())
		args = append(args, cols.reasonArgs()...) // $47–$52
		args = append(args, heldArgs(byID)...)    // $53–$57
		if err := tx.queryRowFirst(ctx, sqlWriteUsageBatch, args, &ids, &accounts, &costs,
			&misIDs, &misUsers, &misKeys, &misGroups, &unkIDs); err != nil {
			return fmt.Errorf("inserting usage records: %w", err)
		}
		refused = refused[:0]
		for i, id := range misIDs {
			refused = append(refused, RefusedWrite{RequestID: id, UserID: misUsers[i], APIKeyID: misKeys[i], GroupID: misGroups[i]})
		}
		for _, id := range unkIDs {
			refused = append(refused, RefusedWrite{RequestID: id, Ungranted: true})
		}
		if len(ids) == 0 {
			return nil
		}
		writes := make([]*UsageWrite, 0, len(ids))
		for _, id := range ids {
			inserted[id] = true
			writes = append(writes, byID[id])
		}
		slices.SortFunc(writes, func(a, b *UsageWrite) int {
			if a.UserID != b.UserID {
				return cmpInt64(a.UserID, b.UserID)
			}
			return strings.Compare(a.RequestID, b.RequestID)
		})
		b := tx.last // sent with the COMMIT
		if err := settleAll(ctx, tx.conn, writes, b); err != nil {
			return err
		}
		for i, a := range accounts {
			b.Queue(sqlAddAccountCost, a, costs[i])
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("writing %d usage records: %w", len(batch), err)
	}
	return inserted, refused, nil
}

// settleAll settles the inserted records, sorted by user id, and queues on b their charges
// (settleBatch: one round trip of locks and reads for the whole batch, one update per
// affected row) and the update that records the settlements differing from the columns'
// defaults.
func settleAll(ctx context.Context, tx batchSender, writes []*UsageWrite, b *pgx.Batch) error {
	ins := make([]Settlement, len(writes))
	for i, u := range writes {
		ins[i] = Settlement{RequestID: u.RequestID, UserID: u.UserID, APIKeyID: u.APIKeyID,
			GroupID: u.GroupID, CostMicros: u.CostMicros, Held: u.Held}
	}
	results, err := settleBatch(ctx, tx, ins, b, time.Now(), billing.Location())
	if err != nil {
		return err
	}
	var reqIDs, modes []string
	var subs, reserved []int64
	for i, res := range results {
		mode := res.BillingMode
		if mode == "" {
			mode = defaultBillingMode
		}
		var sub int64
		if res.SubscriptionID != nil {
			sub = *res.SubscriptionID
		}
		if mode == defaultBillingMode && sub == 0 && res.ReservedMicros == 0 {
			continue
		}
		reqIDs = append(reqIDs, ins[i].RequestID)
		modes = append(modes, mode)
		subs = append(subs, sub)
		reserved = append(reserved, res.ReservedMicros)
	}
	if len(reqIDs) > 0 {
		b.Queue(sqlRecordSettlements, reqIDs, modes, subs, reserved)
	}
	return nil
}

// defaultBillingMode is usage_records.billing_mode's default.
const defaultBillingMode = BillingBalance

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
