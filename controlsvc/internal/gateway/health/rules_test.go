package health

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
		{name: "anthropic RFC 3339 reset", reset: "2026-03-01T10:00:42Z", want: 42 * time.Second},
		{name: "anthropic RFC 3339 reset with fraction and offset", reset: "2026-03-01T11:01:30.5+01:00", want: 90500 * time.Millisecond},
		{name: "anthropic reset in the past: default", reset: "2026-03-01T09:59:00Z", want: 5 * time.Second},
		{name: "several resets: the longest", reset: "2026-03-01T10:00:10Z, 2026-03-01T10:00:50Z,2026-03-01T10:00:20Z", want: 50 * time.Second},
		{name: "openai pair: the longest", reset: "1s, 6m0s", want: 6 * time.Minute},
		{name: "resets and retry-after: the longest", retryAfter: "70", reset: "2026-03-01T10:00:50Z", want: 70 * time.Second},
		{name: "unreadable entries skipped", reset: "soon, 2026-03-01T10:00:30Z, ", want: 30 * time.Second},
		{name: "unix time reset", reset: "1772359260", want: time.Minute}, // 2026-03-01T10:01:00Z
		{name: "absurd unix time ignored", reset: "1e15", want: 5 * time.Second},
		{name: "far RFC 3339 reset capped", reset: "2026-03-02T10:00:00Z", want: 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := RateLimitCooldown(tt.retryAfter, tt.reset, now, DefaultRateLimitCooldown); got != tt.want {
				t.Errorf("RateLimitCooldown(%q, %q) = %v, want %v", tt.retryAfter, tt.reset, got, tt.want)
			}
		})
	}
}

func TestMarkFor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		give     Failure
		wantOK   bool
		wantKind store.MarkKind
		wantFor  time.Duration
		reason   string
	}{
		{name: "429", give: Failure{Status: 429, RetryAfter: "30"}, wantOK: true, wantKind: store.MarkRateLimited, wantFor: 30 * time.Second},
		// A 529 or a 5xx is the breaker's business (BreakerFailure), not the account's.
		{name: "529", give: Failure{Status: 529, ErrorClass: "upstream_status"}},
		{name: "in-stream overloaded", give: Failure{Status: 529, ErrorClass: "in_stream_error"}},
		{name: "in-stream rate limit", give: Failure{Status: 429, ErrorClass: "in_stream_error"}, wantOK: true, wantKind: store.MarkRateLimited, wantFor: 5 * time.Second},
		{name: "quota 429", give: Failure{Status: 429, ErrorClass: "quota"}, wantOK: true, wantKind: store.MarkPaused, wantFor: time.Hour, reason: "insufficient_quota"},
		{name: "quota 400", give: Failure{Status: 400, ErrorClass: "quota"}, wantOK: true, wantKind: store.MarkPaused, wantFor: time.Hour, reason: "insufficient_quota"},
		{name: "first dial failure", give: Failure{ErrorClass: "dial", DialStreak: 1}, wantOK: true, wantKind: store.MarkPaused, wantFor: 5 * time.Second, reason: "upstream unreachable"},
		{name: "third dial failure in a row", give: Failure{ErrorClass: "dial", DialStreak: 3}, wantOK: true, wantKind: store.MarkPaused, wantFor: 20 * time.Second, reason: "upstream unreachable"},
		{name: "dial failure, streak unknown", give: Failure{ErrorClass: "dial"}, wantOK: true, wantKind: store.MarkPaused, wantFor: 5 * time.Second, reason: "upstream unreachable"},
		{name: "timeout", give: Failure{ErrorClass: "first_token_timeout"}},
		{name: "response header timeout", give: Failure{ErrorClass: "response_header_timeout"}},
		{name: "credential 401", give: Failure{Status: 401, ErrorClass: "credential"}, wantOK: true, wantKind: store.MarkPaused, wantFor: 10 * time.Minute, reason: "upstream 401"},
		{name: "credential 403", give: Failure{Status: 403, ErrorClass: "credential"}, wantOK: true, wantKind: store.MarkForbidden, wantFor: 10 * time.Minute, reason: "upstream 403"},
		// A 401/403 the provider does not blame on the credential (a client's bad beta,
		// organization header or image URL) marks nothing.
		{name: "generic 401", give: Failure{Status: 401, ErrorClass: "upstream_status"}},
		{name: "generic 403", give: Failure{Status: 403, ErrorClass: "upstream_status"}},
		{name: "401 without a class", give: Failure{Status: 401}},
		{name: "model not found", give: Failure{Status: 404, ErrorClass: "model_not_found", Model: "gpt-4o-2024-08-06"},
			wantOK: true, wantKind: store.MarkModelBlocked, wantFor: 30 * time.Minute},
		{name: "model not found without a model", give: Failure{Status: 404, ErrorClass: "model_not_found"}},
		{name: "plain 404", give: Failure{Status: 404, ErrorClass: "upstream_status"}},
		// A reset after the request was sent excludes the account for the request only.
		{name: "transport", give: Failure{ErrorClass: "transport"}},
		{name: "500", give: Failure{Status: 500, ErrorClass: "upstream_status"}},
		{name: "502", give: Failure{Status: 502, ErrorClass: "upstream_status"}},
		{name: "402", give: Failure{Status: 402}},
		{name: "success", give: Failure{Status: 200}},
		{name: "client gone", give: Failure{Status: 499, ErrorClass: "client_gone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, ok := MarkFor(tt.give, now, DefaultRateLimitCooldown)
			if ok != tt.wantOK {
				t.Fatalf("markFor ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if m.Kind != tt.wantKind || !m.Until.Equal(now.Add(tt.wantFor)) || m.Reason != tt.reason {
				t.Fatalf("markFor = %+v, want kind %d until now+%v reason %q", m, tt.wantKind, tt.wantFor, tt.reason)
			}
			if m.Model != tt.give.Model {
				t.Fatalf("markFor model %q, want %q", m.Model, tt.give.Model)
			}
			wantStrikes := store.StrikeRule{}
			if tt.wantKind == store.MarkForbidden {
				wantStrikes = store.StrikeRule{At: now, Window: 3 * time.Hour, Limit: 3, Reason: "upstream 403 three times within 3h"}
			}
			if m.Strikes != wantStrikes {
				t.Fatalf("markFor strikes %+v, want %+v", m.Strikes, wantStrikes)
			}
		})
	}
}

func TestMarkForUsesTheConfiguredCooldown(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		give     Failure
		cooldown time.Duration
		want     time.Duration
	}{
		{name: "no reset header: the configured cooldown", give: Failure{Status: 429}, cooldown: 42 * time.Second, want: 42 * time.Second},
		{name: "a reset header wins over it", give: Failure{Status: 429, RetryAfter: "7"}, cooldown: 42 * time.Second, want: 7 * time.Second},
		{name: "unset: the default", give: Failure{Status: 429}, want: DefaultRateLimitCooldown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, ok := MarkFor(tt.give, now, tt.cooldown)
			if !ok || m.Kind != store.MarkRateLimited || !m.Until.Equal(now.Add(tt.want)) {
				t.Fatalf("markFor = %+v %v, want rate limited until now+%v", m, ok, tt.want)
			}
		})
	}
}

func TestDialBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		streak int64
		want   time.Duration
	}{
		{"unknown", 0, 5 * time.Second},
		{"first", 1, 5 * time.Second},
		{"second", 2, 10 * time.Second},
		{"seventh", 7, 5 * time.Minute}, // 320 s capped
		{"many", 1 << 40, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := DialBackoff(tt.streak); got != tt.want {
				t.Fatalf("DialBackoff(%d) = %v, want %v", tt.streak, got, tt.want)
			}
		})
	}
}

func TestBreakerFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		give       Failure
		wantReason string // "" = not a breaker failure
	}{
		{"transport", Failure{ErrorClass: "transport"}, "transport"},
		{"first token timeout", Failure{ErrorClass: "first_token_timeout"}, "first_token_timeout"},
		{"stream idle timeout", Failure{ErrorClass: "stream_idle_timeout"}, "stream_idle_timeout"},
		{"response header timeout", Failure{ErrorClass: "response_header_timeout"}, "response_header_timeout"},
		{"stream cut before the commit point", Failure{Status: 200, ErrorClass: "stream_cut"}, "stream_cut"},
		{"stream ended early", Failure{Status: 200, ErrorClass: "stream_incomplete"}, "stream_incomplete"},
		{"500", Failure{Status: 500, ErrorClass: "upstream_status"}, "upstream_status 500"},
		{"503", Failure{Status: 503, ErrorClass: "upstream_status"}, "upstream_status 503"},
		{"529", Failure{Status: 529, ErrorClass: "upstream_status"}, "upstream_status 529"},
		{"in-stream overloaded", Failure{Status: 529, ErrorClass: "in_stream_error"}, "in_stream_error 529"},
		{"in-stream rate limit", Failure{Status: 429, ErrorClass: "in_stream_error"}, ""},
		{"429", Failure{Status: 429, ErrorClass: "upstream_status"}, ""},
		{"dial: the account's, not the model's", Failure{ErrorClass: "dial"}, ""},
		{"quota", Failure{Status: 429, ErrorClass: "quota"}, ""},
		{"credential", Failure{Status: 401, ErrorClass: "credential"}, ""},
		{"model not found", Failure{Status: 404, ErrorClass: "model_not_found"}, ""},
		{"context length", Failure{Status: 400, ErrorClass: "context_length_exceeded"}, ""},
		{"refused upstream address", Failure{ErrorClass: "upstream_refused"}, ""},
		{"client gone", Failure{Status: 499, ErrorClass: "client_gone"}, ""},
		{"request timeout", Failure{ErrorClass: "request_timeout"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reason, ok := BreakerFailure(tt.give)
			if ok != (tt.wantReason != "") || reason != tt.wantReason {
				t.Fatalf("BreakerFailure(%+v) = %q %v, want %q", tt.give, reason, ok, tt.wantReason)
			}
		})
	}
}

func TestAnswered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		class  string
		want   bool
	}{
		{"200", 200, "", true},
		{"200, client left", 200, "client_gone", true},
		{"relayed 400", 400, "upstream_status", true},
		{"429", 429, "upstream_status", false},
		{"500", 500, "upstream_status", false},
		{"200 broken after commit", 200, "transport", false},
		{"200 idle after commit", 200, "stream_idle_timeout", false},
		{"200 cut", 200, "stream_cut", false},
		{"quota 400", 400, "quota", false},
		{"credential 401", 401, "credential", false},
		{"no response", 0, "transport", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Answered(tt.status, tt.class); got != tt.want {
				t.Fatalf("Answered(%d, %q) = %v, want %v", tt.status, tt.class, got, tt.want)
			}
		})
	}
}
