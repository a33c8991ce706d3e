package app

import (
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// TestConfigDefaultsAreThePackages: config does not import the packages it configures, so
// it states their defaults again; app, which wires them, holds the two equal. A default
// changed on one side only fails here.
func TestConfigDefaultsAreThePackages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		config, pkg any // both a time.Duration, or both an int
	}{
		{"rate limit cooldown", config.DefaultRateLimitCooldown, health.DefaultRateLimitCooldown},
		{"rate limit cooldown cap", config.MaxRateLimitCooldown, health.MaxRateLimitCooldown},
		{"reservation TTL", config.DefaultReservationTTL, store.DefaultReservationTTL},
		{"statement timeout", config.DefaultDBStatementTimeout, store.DefaultStatementTimeout},
		{"idle in transaction timeout", config.DefaultDBIdleInTransactionTimeout, store.DefaultIdleInTransactionTimeout},
		{"user wait timeout", config.DefaultUserWaitTimeout, admission.DefaultUserWaitTimeout},
		{"sticky wait timeout", config.DefaultStickyWaitTimeout, admission.DefaultStickyWaitTimeout},
		{"account wait timeout", config.DefaultAccountWaitTimeout, admission.DefaultFallbackWaitTimeout},
		{"user waiters", config.DefaultUserWaitMax, admission.DefaultUserMaxWaiters},
		{"sticky waiters", config.DefaultStickyWaitMax, admission.DefaultStickyMaxWaiters},
		{"account waiters", config.DefaultAccountWaitMax, admission.DefaultFallbackMaxWaiters},
	}
	for _, tt := range tests {
		if tt.config != tt.pkg {
			t.Errorf("%s: config says %v, the package %v", tt.name, tt.config, tt.pkg)
		}
	}
}
