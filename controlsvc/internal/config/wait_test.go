package config

import (
	"testing"
	"time"
)

func TestWaitQueueDefaults(t *testing.T) {
	want := WaitQueues{UserMax: 20, UserTimeout: 30 * time.Second, StickyMax: 3, StickyTimeout: 120 * time.Second,
		AccountMax: 100, AccountTimeout: 30 * time.Second}
	if got := DefaultWaitQueues(); got != want {
		t.Fatalf("DefaultWaitQueues() = %+v, want %+v", got, want)
	}
}

func TestWaitQueuesFromEnv(t *testing.T) {
	cfg := mustFromEnv(t, map[string]string{
		EnvUserWaitMax:        "5",
		EnvUserWaitTimeout:    "3s",
		EnvStickyWaitMax:      "0",
		EnvStickyWaitTimeout:  "1m",
		EnvAccountWaitMax:     " 7 ",
		EnvAccountWaitTimeout: "1500ms",
	})
	want := WaitQueues{UserMax: 5, UserTimeout: 3 * time.Second, StickyMax: 0, StickyTimeout: time.Minute,
		AccountMax: 7, AccountTimeout: 1500 * time.Millisecond}
	if cfg.Wait != want {
		t.Fatalf("Wait = %+v, want %+v", cfg.Wait, want)
	}
}

func TestWaitQueuesFromEnvErrors(t *testing.T) {
	tests := []struct {
		name     string
		give     map[string]string
		wantVar  string
		wantText string
	}{
		{"user max not a number", map[string]string{EnvUserWaitMax: "twenty"}, EnvUserWaitMax, "not a whole number"},
		{"user max negative", map[string]string{EnvUserWaitMax: "-1"}, EnvUserWaitMax, "negative"},
		{"sticky max fraction", map[string]string{EnvStickyWaitMax: "1.5"}, EnvStickyWaitMax, "not a whole number"},
		{"account max negative", map[string]string{EnvAccountWaitMax: "-3"}, EnvAccountWaitMax, "negative"},
		{"user timeout bare number", map[string]string{EnvUserWaitTimeout: "30"}, EnvUserWaitTimeout, "not a duration"},
		{"user timeout zero", map[string]string{EnvUserWaitTimeout: "0s"}, EnvUserWaitTimeout, "out of range"},
		{"sticky timeout negative", map[string]string{EnvStickyWaitTimeout: "-2m"}, EnvStickyWaitTimeout, "out of range"},
		{"account timeout too long", map[string]string{EnvAccountWaitTimeout: "2h"}, EnvAccountWaitTimeout, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fromEnvError(t, tt.give, tt.wantVar, tt.wantText)
		})
	}
}
