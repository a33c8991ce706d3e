package adminapi

import (
	"encoding/json"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// groupBillingView is how a group's requests are paid for (docs/billing.md).
type groupBillingView struct {
	BillingMode string `json:"billing_mode"`
	// Subscription window limits; null = unlimited.
	DailyLimitUSD   *json.Number `json:"daily_limit_usd"`
	WeeklyLimitUSD  *json.Number `json:"weekly_limit_usd"`
	MonthlyLimitUSD *json.Number `json:"monthly_limit_usd"`
	AllowUnpriced   bool         `json:"allow_unpriced"`
	// The reservation's output estimate when a request names no maximum, and its cap.
	DefaultMaxOutputTokens int         `json:"default_max_output_tokens"`
	MaxReserveUSD          json.Number `json:"max_reserve_usd"`
	// Requests naming no output maximum are sent with default_max_output_tokens.
	CapOutputTokens bool `json:"cap_output_tokens"`
}

func newGroupBillingView(b store.GroupBilling) groupBillingView {
	return groupBillingView{
		BillingMode: b.BillingMode, DailyLimitUSD: optionalUSD(b.DailyLimitMicros),
		WeeklyLimitUSD: optionalUSD(b.WeeklyLimitMicros), MonthlyLimitUSD: optionalUSD(b.MonthlyLimitMicros),
		AllowUnpriced: b.AllowUnpriced, DefaultMaxOutputTokens: b.DefaultMaxOutputTokens,
		MaxReserveUSD: formatMicros(b.MaxReserveMicros), CapOutputTokens: b.CapOutputTokens,
	}
}

var billingModes = []string{store.BillingBalance, store.BillingSubscription}

// groupBillingInput holds the billing fields of POST and PATCH /groups.
type groupBillingInput struct {
	BillingMode            *string          `json:"billing_mode"`
	DailyLimitUSD          nullable         `json:"daily_limit_usd"`
	WeeklyLimitUSD         nullable         `json:"weekly_limit_usd"`
	MonthlyLimitUSD        nullable         `json:"monthly_limit_usd"`
	AllowUnpriced          *bool            `json:"allow_unpriced"`
	DefaultMaxOutputTokens *int             `json:"default_max_output_tokens"`
	MaxReserveUSD          *json.RawMessage `json:"max_reserve_usd"`
	CapOutputTokens        *bool            `json:"cap_output_tokens"`
}

// billingPatch validates the billing fields into p.
func (in *groupBillingInput) billingPatch(p *store.GroupPatch) error {
	if err := checkEnum("billing_mode", in.BillingMode, billingModes); err != nil {
		return err
	}
	p.BillingMode, p.AllowUnpriced, p.CapOutputTokens = in.BillingMode, in.AllowUnpriced, in.CapOutputTokens
	var err error
	if p.DailyLimit, err = in.DailyLimitUSD.usd("daily_limit_usd"); err != nil {
		return err
	}
	if p.WeeklyLimit, err = in.WeeklyLimitUSD.usd("weekly_limit_usd"); err != nil {
		return err
	}
	if p.MonthlyLimit, err = in.MonthlyLimitUSD.usd("monthly_limit_usd"); err != nil {
		return err
	}
	if v := in.DefaultMaxOutputTokens; v != nil && (*v < 1 || *v > store.MaxMaxOutputTokens) {
		return invalid("default_max_output_tokens must be between 1 and %d", store.MaxMaxOutputTokens)
	}
	p.DefaultMaxOutputTokens = in.DefaultMaxOutputTokens
	if in.MaxReserveUSD != nil {
		v, err := parseUSD("max_reserve_usd", *in.MaxReserveUSD)
		if err != nil {
			return err
		}
		if v == 0 {
			return invalid("max_reserve_usd must be above 0: a cap of 0 would admit requests without holding any money")
		}
		p.MaxReserveMicros = &v
	}
	return nil
}

// billing validates the billing fields of a new group; absent ones take the defaults.
func (in *groupBillingInput) billing() (store.GroupBilling, error) {
	var p store.GroupPatch
	if err := in.billingPatch(&p); err != nil {
		return store.GroupBilling{}, err
	}
	b := store.GroupBilling{BillingMode: store.BillingBalance, DefaultMaxOutputTokens: store.DefaultMaxOutputTokens,
		MaxReserveMicros: store.DefaultMaxReserveMicros,
		DailyLimitMicros: p.DailyLimit.Micros, WeeklyLimitMicros: p.WeeklyLimit.Micros, MonthlyLimitMicros: p.MonthlyLimit.Micros}
	if p.BillingMode != nil {
		b.BillingMode = *p.BillingMode
	}
	if p.AllowUnpriced != nil {
		b.AllowUnpriced = *p.AllowUnpriced
	}
	if p.DefaultMaxOutputTokens != nil {
		b.DefaultMaxOutputTokens = *p.DefaultMaxOutputTokens
	}
	if p.MaxReserveMicros != nil {
		b.MaxReserveMicros = *p.MaxReserveMicros
	}
	if p.CapOutputTokens != nil {
		b.CapOutputTokens = *p.CapOutputTokens
	}
	return b, nil
}
