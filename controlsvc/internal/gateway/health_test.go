package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func TestRateLimitCooldown(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string
		reset      string
		want       time.Duration
	}{
		{name: "nothing: default", want: 5 * time.Second},
		{name: "retry-after seconds", retryAfter: "12", want: 12 * time.Second},
		{name: "retry-after fractional seconds", retryAfter: "1.5", want: 1500 * time.Millisecond},
		{name: "retry-after http date", retryAfter: now.Add(45 * time.Second).Format(http.TimeFormat), want: 45 * time.Second},
		{name: "retry-after date in the past: default", retryAfter: now.Add(-time.Minute).Format(http.TimeFormat), want: 5 * time.Second},
		{name: "retry-after zero: default", retryAfter: "0", want: 5 * time.Second},
		{name: "retry-after negative: default", retryAfter: "-3", want: 5 * time.Second},
		{name: "retry-after garbage: default", retryAfter: "soon", want: 5 * time.Second},
		{name: "reset seconds", reset: "6s", want: 6 * time.Second},
		{name: "reset compound", reset: "1m30s", want: 90 * time.Second},
		{name: "reset milliseconds", reset: "20ms", want: 20 * time.Millisecond},
		{name: "reset hours", reset: "1h2m3.5s", want: time.Hour + 2*time.Minute + 3500*time.Millisecond},
		{name: "reset bare number is seconds", reset: "7", want: 7 * time.Second},
		{name: "longer of the two", retryAfter: "3", reset: "1m", want: time.Minute},
		{name: "longer of the two, other way", retryAfter: "300", reset: "1m", want: 5 * time.Minute},
		{name: "capped at two hours", retryAfter: "86400", want: 2 * time.Hour},
		{name: "reset capped at two hours", reset: "100h", want: 2 * time.Hour},
		{name: "whitespace tolerated", retryAfter: " 9 ", want: 9 * time.Second},
		{name: "NaN ignored", retryAfter: "NaN", want: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := rateLimitCooldown(tt.retryAfter, tt.reset, now); got != tt.want {
				t.Errorf("rateLimitCooldown(%q, %q) = %v, want %v", tt.retryAfter, tt.reset, got, tt.want)
			}
		})
	}
}

func TestMarkFor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		give     failure
		wantOK   bool
		wantKind store.MarkKind
		wantFor  time.Duration
		reason   string
	}{
		{name: "429", give: failure{Status: 429, RetryAfter: "30"}, wantOK: true, wantKind: store.MarkRateLimited, wantFor: 30 * time.Second},
		{name: "529", give: failure{Status: 529}, wantOK: true, wantKind: store.MarkOverloaded, wantFor: 10 * time.Minute},
		{name: "401", give: failure{Status: 401}, wantOK: true, wantKind: store.MarkPaused, wantFor: 10 * time.Minute, reason: "upstream 401"},
		{name: "403", give: failure{Status: 403}, wantOK: true, wantKind: store.MarkPaused, wantFor: 10 * time.Minute, reason: "upstream 403"},
		{name: "transport", give: failure{ErrorClass: "transport"}, wantOK: true, wantKind: store.MarkPaused, wantFor: 10 * time.Minute, reason: "upstream transport error"},
		{name: "500", give: failure{Status: 500, ErrorClass: "upstream_status"}},
		{name: "502", give: failure{Status: 502, ErrorClass: "upstream_status"}},
		{name: "402", give: failure{Status: 402}},
		{name: "success", give: failure{Status: 200}},
		{name: "client gone", give: failure{Status: 499, ErrorClass: "client_gone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, ok := markFor(tt.give, now)
			if ok != tt.wantOK {
				t.Fatalf("markFor ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if m.Kind != tt.wantKind || !m.Until.Equal(now.Add(tt.wantFor)) || m.Reason != tt.reason {
				t.Fatalf("markFor = %+v, want kind %d until now+%v reason %q", m, tt.wantKind, tt.wantFor, tt.reason)
			}
		})
	}
}
