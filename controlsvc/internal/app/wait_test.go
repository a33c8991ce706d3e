package app

import (
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway"
)

func TestWaitConfigMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give config.WaitQueues
		want gateway.WaitConfig
	}{
		{
			name: "defaults pass through",
			give: config.DefaultWaitQueues(),
			want: gateway.WaitConfig{UserMaxWaiters: 20, UserTimeout: 30 * time.Second, StickyMaxWaiters: 3,
				StickyTimeout: 120 * time.Second, FallbackMaxWaiters: 100, FallbackTimeout: 30 * time.Second},
		},
		{
			name: "a maximum of 0 turns the queue off",
			give: config.WaitQueues{UserMax: 0, UserTimeout: 3 * time.Second, StickyMax: 1, StickyTimeout: time.Second,
				AccountMax: 0, AccountTimeout: 2 * time.Second},
			want: gateway.WaitConfig{UserMaxWaiters: -1, UserTimeout: 3 * time.Second, StickyMaxWaiters: 1,
				StickyTimeout: time.Second, FallbackMaxWaiters: -1, FallbackTimeout: 2 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := waitConfig(tt.give); got != tt.want {
				t.Fatalf("waitConfig(%+v) = %+v, want %+v", tt.give, got, tt.want)
			}
		})
	}
}
