package config

import (
	"strings"
	"testing"
)

func TestBillingTimezone(t *testing.T) {
	tests := []struct {
		give    string
		want    string // zone name; "" = error
		wantErr string
	}{
		{"", "UTC", ""},
		{"UTC", "UTC", ""},
		{"Europe/Berlin", "Europe/Berlin", ""},
		{"  America/New_York ", "America/New_York", ""},
		{"Mars/Olympus", "", `POOLGATE_BILLING_TIMEZONE: "Mars/Olympus" is not an IANA time zone`},
		{"Local", "", "not Local"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			setEnv(t, map[string]string{EnvBillingTimezone: tt.give})
			cfg, err := FromEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("FromEnv() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || cfg.BillingLocation == nil || cfg.BillingLocation.String() != tt.want {
				t.Errorf("FromEnv() = %v, %v; want zone %s", cfg.BillingLocation, err, tt.want)
			}
		})
	}
}
