package usage

import (
	"errors"
	"testing"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		format  string
		give    string
		want    Tokens
		wantErr error
	}{
		{
			name:   "responses with cached tokens",
			format: FormatResponses,
			give: `{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1000},
				"output_tokens":300,"output_tokens_details":{"reasoning_tokens":100},"total_tokens":1500}`,
			want: Tokens{Input: 200, Output: 300, CacheRead: 1000, Reasoning: 100},
		},
		{
			name:   "responses without details",
			format: FormatResponses,
			give:   `{"input_tokens":12,"output_tokens":7,"total_tokens":19}`,
			want:   Tokens{Input: 12, Output: 7},
		},
		{
			name:   "chat with cached tokens",
			format: FormatChat,
			give: `{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
				"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0}}`,
			want: Tokens{Input: 86, Output: 300, CacheRead: 1920},
		},
		{
			name:   "chat with reasoning tokens",
			format: FormatChat,
			give: `{"prompt_tokens":40,"completion_tokens":900,"total_tokens":940,
				"completion_tokens_details":{"reasoning_tokens":640,"accepted_prediction_tokens":0}}`,
			want: Tokens{Input: 40, Output: 900, Reasoning: 640},
		},
		{
			name:   "chat ignores responses reasoning field",
			format: FormatChat,
			give:   `{"prompt_tokens":4,"completion_tokens":9,"output_tokens_details":{"reasoning_tokens":5}}`,
			want:   Tokens{Input: 4, Output: 9},
		},
		{
			name:   "responses ignores chat reasoning field",
			format: FormatResponses,
			give:   `{"input_tokens":4,"output_tokens":9,"completion_tokens_details":{"reasoning_tokens":5}}`,
			want:   Tokens{Input: 4, Output: 9},
		},
		{
			name:   "responses with zero values",
			format: FormatResponses,
			give: `{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,
				"output_tokens_details":{"reasoning_tokens":0}}`,
			want: Tokens{},
		},
		{
			name:   "chat ignores responses field names",
			format: FormatChat,
			give:   `{"input_tokens":50,"output_tokens":5}`,
			want:   Tokens{},
		},
		{
			name:   "anthropic input is already exclusive",
			format: FormatAnthropic,
			give: `{"input_tokens":25,"cache_creation_input_tokens":1500,"cache_read_input_tokens":3000,
				"output_tokens":420}`,
			want: Tokens{Input: 25, Output: 420, CacheRead: 3000, CacheCreation: 1500},
		},
		{
			name:   "anthropic merged stream usage with server tool use",
			format: FormatAnthropic,
			give: `{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":7,"output_tokens":55,
				"server_tool_use":{"web_search_requests":1},"service_tier":"standard"}`,
			want: Tokens{Input: 10, Output: 55, CacheRead: 7},
		},
		{
			name:   "anthropic ignores openai field names",
			format: FormatAnthropic,
			give:   `{"prompt_tokens":10,"completion_tokens":5,"input_tokens_details":{"cached_tokens":3}}`,
			want:   Tokens{},
		},
		{
			name:   "cached above input clamps to zero",
			format: FormatResponses,
			give:   `{"input_tokens":10,"input_tokens_details":{"cached_tokens":50},"output_tokens":1}`,
			want:   Tokens{Input: 0, Output: 1, CacheRead: 50},
		},
		{
			name:   "negative and non-numeric counts are zero",
			format: FormatAnthropic,
			give:   `{"input_tokens":-5,"output_tokens":"12","cache_read_input_tokens":null}`,
			want:   Tokens{},
		},
		{name: "null usage", format: FormatResponses, give: `null`, want: Tokens{}},
		{name: "missing usage", format: FormatChat, give: ``, want: Tokens{}},
		{name: "null usage of unknown format", format: "", give: " null ", want: Tokens{}},
		{name: "array is invalid", format: FormatChat, give: `[1,2]`, wantErr: ErrInvalidUsage},
		{name: "broken JSON is invalid", format: FormatChat, give: `{"prompt_tokens":`, wantErr: ErrInvalidUsage},
		{name: "unknown format", format: "gemini", give: `{"promptTokenCount":3}`, wantErr: ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Normalize(tt.format, []byte(tt.give))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Normalize error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Normalize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTokensBilled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give Tokens
		want bool
	}{
		{"zero", Tokens{}, false},
		{"reasoning alone is not billed", Tokens{Reasoning: 3}, false},
		{"input", Tokens{Input: 1}, true},
		{"output", Tokens{Output: 1}, true},
		{"cache read", Tokens{CacheRead: 1}, true},
		{"cache write", Tokens{CacheCreation: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.give.Billed(); got != tt.want {
				t.Errorf("%+v.Billed() = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}
