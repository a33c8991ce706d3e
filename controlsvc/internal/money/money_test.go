package money

import (
	"errors"
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    string
		want    int64
		wantErr error
	}{
		{"0", 0, nil},
		{"12.5", 12_500_000, nil},
		{"0.1", 100_000, nil},
		{"0.000001", 1, nil},
		{"12.345678", 12_345_678, nil},
		{"-3.25", -3_250_000, nil},
		{"1e2", 100_000_000, nil},
		{"1.5E-6", 0, ErrTooPrecise},
		{"2.5e-6", 0, ErrTooPrecise},
		{"1e-6", 1, nil},
		{"0.0000001", 0, ErrTooPrecise},
		{"12.3456789", 0, ErrTooPrecise},
		{"9223372036854.775807", math.MaxInt64, nil},
		{"9223372036854.775808", 0, ErrOutOfRange},
		{"-9223372036854.775808", math.MinInt64, nil},
		{"1e31", 0, ErrOutOfRange},
		{"1e999999999", 0, ErrOutOfRange},
		{"1/3", 0, ErrNotNumber},
		{"0x10", 0, ErrNotNumber},
		{`"12.5"`, 0, ErrNotNumber},
		{"true", 0, ErrNotNumber},
		{" 1", 0, ErrNotNumber},
		{"", 0, ErrNotNumber},
		{"01", 0, ErrNotNumber},
		{"1.", 0, ErrNotNumber},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.give)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.give, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give int64
		want string
	}{
		{0, "0"},
		{12_500_000, "12.5"},
		{1, "0.000001"},
		{100_000, "0.1"},
		{-3_250_000, "-3.25"},
		{5_000_000, "5"},
		{math.MaxInt64, "9223372036854.775807"},
		{math.MinInt64, "-9223372036854.775808"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			got := Format(tt.give)
			if string(got) != tt.want {
				t.Errorf("Format(%d) = %s, want %s", tt.give, got, tt.want)
			}
			back, err := Parse(string(got))
			if err != nil || back != tt.give {
				t.Errorf("round trip of %d: %d, %v", tt.give, back, err)
			}
		})
	}
}
