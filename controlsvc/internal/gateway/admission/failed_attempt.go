package admission

import (
	"context"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// failure is one failed upstream attempt as the plugin reports it (package health decides
// what it means for the account).
type failure = health.Failure

// markFailedAttempt settles the health of the account of a failed attempt of grantID at
// re-admission and reports whether it opened the attempt's breaker; model is the model the
// client asked for, after the group's mapping. The failure concerns the model the account
// was sent, after its own mapping.
func (s *Admitter) markFailedAttempt(ctx context.Context, key store.KeyAuth, model, grantID string, f failure) bool {
	f.Model = s.upstreamModelOf(ctx, key, f.AccountID, model)
	return s.health.MarkFailedAttempt(ctx, key, grantID, f)
}

// upstreamModelOf is the model the account is sent for a request of model: its mapping's
// target, or model itself when the mapping passes it through or the account is unknown.
func (s *Admitter) upstreamModelOf(ctx context.Context, key store.KeyAuth, accountID int64, model string) string {
	accounts, err := s.groupAccounts(ctx, key.GroupID, key.Platform)
	if err != nil {
		s.log.Warn("resolving the failed account's model", "account_id", accountID, "error", err)
		return model
	}
	for i := range accounts {
		if accounts[i].ID != accountID {
			continue
		}
		if up, ok := accounts[i].mapping.Resolve(model); ok && up != "" {
			return up
		}
		break
	}
	return model
}
