package app

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
)

func TestWaitConfigMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give config.WaitQueues
		want admission.WaitConfig
	}{
		{
			name: "defaults pass through",
			give: config.DefaultWaitQueues(),
			want: admission.WaitConfig{UserMaxWaiters: 20, UserTimeout: 30 * time.Second, StickyMaxWaiters: 3,
				StickyTimeout: 120 * time.Second, FallbackMaxWaiters: 100, FallbackTimeout: 30 * time.Second},
		},
		{
			name: "a maximum of 0 turns the queue off",
			give: config.WaitQueues{UserMax: 0, UserTimeout: 3 * time.Second, StickyMax: 1, StickyTimeout: time.Second,
				AccountMax: 0, AccountTimeout: 2 * time.Second},
			want: admission.WaitConfig{UserMaxWaiters: -1, UserTimeout: 3 * time.Second, StickyMaxWaiters: 1,
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

func TestRedisTimeouts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		url                 string
		dial, read, written time.Duration
	}{
		{name: "defaults made explicit", url: "redis://127.0.0.1:6379/0", dial: 5 * time.Second, read: 3 * time.Second,
			written: 3 * time.Second},
		{name: "the URL's own", url: "redis://127.0.0.1:6379/0?dial_timeout=1s&read_timeout=2s&write_timeout=4s",
			dial: time.Second, read: 2 * time.Second, written: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts, err := redis.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			redisTimeouts(opts)
			if opts.DialTimeout != tt.dial || opts.ReadTimeout != tt.read || opts.WriteTimeout != tt.written ||
				!opts.ContextTimeoutEnabled {
				t.Errorf("dial %s read %s write %s context %v, want %s %s %s true", opts.DialTimeout, opts.ReadTimeout,
					opts.WriteTimeout, opts.ContextTimeoutEnabled, tt.dial, tt.read, tt.written)
			}
		})
	}
}
