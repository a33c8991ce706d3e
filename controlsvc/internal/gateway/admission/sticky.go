package admission

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// stickyTTL is the life of a session binding, refreshed on every use (docs/design.md, "Sticky sessions").
const stickyTTL = time.Hour

// Session sources of the admit request (session_source).
const (
	sessionSourceExplicit = "explicit"
	sessionSourceContent  = "content"
)

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

// binding is a session's sticky binding: the account serving it, and the account it was
// bound to before a failover moved it (preferred, 0 = none), to which the session returns
// as soon as that account is a candidate again ("Sticky sessions"). The Redis value is "<account>"
// or "<account>:<preferred>"; a plain "<id>" (written before preferred accounts) reads as no preferred.
type binding struct {
	account   int64
	preferred int64
}

// value is the binding's Redis value.
func (b binding) value() string {
	v := strconv.FormatInt(b.account, 10)
	if b.preferred > 0 && b.preferred != b.account {
		v += ":" + strconv.FormatInt(b.preferred, 10)
	}
	return v
}

// parseBinding reads a binding value; anything unreadable is no binding.
func parseBinding(v string) binding {
	acc, pref, _ := strings.Cut(v, ":")
	id, err := strconv.ParseInt(acc, 10, 64)
	if err != nil || id <= 0 {
		return binding{}
	}
	b := binding{account: id}
	if p, err := strconv.ParseInt(pref, 10, 64); err == nil && p > 0 && p != id {
		b.preferred = p
	}
	return b
}

// stickyBinding reads a queued GET: the binding, zero when there is none.
func stickyBinding(cmd *redis.StringCmd) binding {
	if cmd == nil {
		return binding{}
	}
	v, err := cmd.Result()
	if err != nil {
		return binding{}
	}
	return parseBinding(v)
}

// session is what admission knows of the request's session: its hash ("" = none), whether
// the seed is the content (the plugin's session_source "content": it never waits for its
// account) and the binding read at admission.
type session struct {
	hash    string
	content bool
	bound   binding
}

// target is the account the session should be served by among the candidates: its preferred
// account when that is schedulable again (the session comes home), else its bound one; 0
// when neither is a candidate.
func (ss *session) target(byID map[int64]*candidate) int64 {
	if _, ok := byID[ss.bound.preferred]; ok && ss.bound.preferred > 0 {
		return ss.bound.preferred
	}
	if _, ok := byID[ss.bound.account]; ok && ss.bound.account > 0 {
		return ss.bound.account
	}
	return 0
}

// next is the binding after the session was given chosen, and whether to write it. Home (the
// preferred account) binds plainly; the bound account keeps the binding, refreshed. Another
// account moves the binding there, remembering the account to come back to (the preferred
// one, else the one bound until now) — unless the session is content-seeded and its account
// is still a candidate, only busy: then this request is served elsewhere and the binding is
// left as it is (not refreshed), so that the conversation's next turn tries its account again.
func (ss *session) next(chosen int64, cands []candidate) (binding, bool) {
	b := ss.bound
	switch {
	case ss.hash == "":
		return binding{}, false
	case b.account == 0 || chosen == b.preferred:
		return binding{account: chosen}, true
	case chosen == b.account:
		return b, true
	case ss.content && isCandidate(cands, b.account):
		return b, false
	}
	pref := b.preferred
	if pref == 0 {
		pref = b.account
	}
	return binding{account: chosen, preferred: pref}, true
}

func isCandidate(cands []candidate, id int64) bool {
	for i := range cands {
		if cands[i].acc.ID == id {
			return true
		}
	}
	return false
}

// bindSticky writes (or refreshes) the binding after the account's slot was acquired.
// Failing to bind costs affinity only, never the request.
func (s *Admitter) bindSticky(ctx context.Context, groupID int64, hash string, b binding) {
	if err := s.rdb.Set(ctx, stickyKey(groupID, hash), b.value(), stickyTTL).Err(); err != nil {
		s.log.Warn("binding sticky session", "group_id", groupID, "account_id", b.account, "error", err)
	}
}

// unbindSticky drops a binding whose account can no longer serve the session.
func (s *Admitter) unbindSticky(ctx context.Context, groupID int64, hash string) {
	if err := s.rdb.Del(ctx, stickyKey(groupID, hash)).Err(); err != nil {
		s.log.Warn("dropping sticky session", "group_id", groupID, "error", err)
	}
}
