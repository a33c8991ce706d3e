package app

import (
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway"
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
		{"user wait timeout", config.DefaultUserWaitTimeout, gateway.DefaultUserWaitTimeout},
		{"sticky wait timeout", config.DefaultStickyWaitTimeout, gateway.DefaultStickyWaitTimeout},
		{"account wait timeout", config.DefaultAccountWaitTimeout, gateway.DefaultFallbackWaitTimeout},
		{"user waiters", config.DefaultUserWaitMax, gateway.DefaultUserMaxWaiters},
		{"sticky waiters", config.DefaultStickyWaitMax, gateway.DefaultStickyMaxWaiters},
		{"account waiters", config.DefaultAccountWaitMax, gateway.DefaultFallbackMaxWaiters},
	}
	for _, tt := range tests {
		if tt.config != tt.pkg {
			t.Errorf("%s: config says %v, the package %v", tt.name, tt.config, tt.pkg)
		}
	}
}
