package gateway

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// stickyTTL is the life of a session binding, refreshed on every use (issue 3 §5).
const stickyTTL = time.Hour

// maxSessionHash bounds the session hash the plugin sends (hex SHA-256: 64 characters).
const maxSessionHash = 128

// stickyKey is the Redis key of the binding (group, session hash) → account id. The group's
// hash tag keeps it in one Redis Cluster slot; every write sets a TTL.
func stickyKey(groupID int64, hash string) string {
	return "pg:{g:" + strconv.FormatInt(groupID, 10) + "}:sticky:" + hash
}

// validSessionHash accepts lowercase or uppercase hex of a sane length.
func validSessionHash(h string) bool {
	if h == "" || len(h) > maxSessionHash {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// stickyGet queues the binding's GET in p; read its result with stickyAccount.
func stickyGet(ctx context.Context, p redis.Pipeliner, groupID int64, hash string) *redis.StringCmd {
	return p.Get(ctx, stickyKey(groupID, hash))
}

// stickyAccount reads a queued GET: the bound account id, 0 when there is none.
func stickyAccount(cmd *redis.StringCmd) int64 {
	if cmd == nil {
		return 0
	}
	id, err := cmd.Int64()
	if err != nil {
		return 0
	}
	return id
}

// bindSticky writes (or refreshes) the binding after the account's slot was acquired.
// Failing to bind costs affinity only, never the request.
func (s *Service) bindSticky(ctx context.Context, groupID int64, hash string, accountID int64) {
	if err := s.rdb.Set(ctx, stickyKey(groupID, hash), accountID, stickyTTL).Err(); err != nil {
		s.log.Warn("binding sticky session", "group_id", groupID, "account_id", accountID, "error", err)
	}
}

// unbindSticky drops a binding whose account can no longer serve the session.
func (s *Service) unbindSticky(ctx context.Context, groupID int64, hash string) {
	if err := s.rdb.Del(ctx, stickyKey(groupID, hash)).Err(); err != nil {
		s.log.Warn("dropping sticky session", "group_id", groupID, "error", err)
	}
}
