// Package billing holds the pure rules of subscription billing: where the daily, weekly and
// monthly usage windows of a subscription start and end (docs/billing.md).
package billing

import (
	"sync/atomic"
	"time"

	// Embedded zone data: POOLGATE_BILLING_TIMEZONE resolves even in an image without
	// /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Window lengths of the rolling windows, counted from a subscription's starts_at.
const (
	WeekPeriod  = 7 * 24 * time.Hour
	MonthPeriod = 30 * 24 * time.Hour
)

// Window names, as the API and the refusals call them.
const (
	Daily   = "daily"
	Weekly  = "weekly"
	Monthly = "monthly"
)

// Window is the half-open interval [Start, End) a usage amount belongs to.
type Window struct {
	Start time.Time
	End   time.Time
}

// Contains reports whether t lies in the window.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// DailyWindow is the calendar day of now in loc: from the first instant of that local date
// to the first instant of the next one. Days are 23 or 25 hours long across DST changes, and
// in zones that skip midnight the day starts at the transition.
func DailyWindow(now time.Time, loc *time.Location) Window {
	local := now.In(loc)
	y, m, d := local.Date()
	return Window{Start: startOfDay(y, m, d, loc), End: startOfDay(y, m, d+1, loc)}
}

// startOfDay is the first instant whose local date in loc is y-m-d (d may overflow the
// month; time.Date normalises it). time.Date alone does not promise that when local
// midnight falls into a DST change: a skipped midnight may resolve to an instant still on
// the previous date or to one past the day's first instant, and a repeated midnight to its
// second occurrence.
func startOfDay(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC) // the date itself, normalised
	switch date := localDate(t); {
	case date.Before(day):
		// Skipped midnight, resolved before the jump: the day begins at the jump.
		if _, end := t.ZoneBounds(); !end.IsZero() {
			return end
		}
	case date.After(day):
		return t // cannot happen with real zone data; keep what time.Date said
	case t.Hour() != 0 || t.Minute() != 0 || t.Second() != 0 || t.Nanosecond() != 0:
		// Skipped midnight, resolved after the jump: the day begins at the jump.
		if start, _ := t.ZoneBounds(); !start.IsZero() {
			return start
		}
	default:
		// A midnight that occurs twice (clocks went back across it): take the first.
		start, _ := t.ZoneBounds()
		if start.IsZero() {
			return t
		}
		_, prevOffset := start.Add(-time.Nanosecond).Zone()
		earlier := day.Add(-time.Duration(prevOffset) * time.Second).In(loc)
		if earlier.Before(start) && localDate(earlier).Equal(day) && earlier.Hour() == 0 && earlier.Minute() == 0 {
			return earlier
		}
	}
	return t
}

// localDate is t's date in its own location, as midnight UTC of that date.
func localDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// RollingWindow is the window of a period-long cycle counted from start that holds now:
// window k is [start + k×period, start + (k+1)×period). Before start it is window 0.
func RollingWindow(start time.Time, period time.Duration, now time.Time) Window {
	k := int64(0)
	if elapsed := now.Sub(start); elapsed > 0 {
		k = int64(elapsed / period)
	}
	from := start.Add(time.Duration(k) * period)
	return Window{Start: from, End: from.Add(period)}
}

// WeeklyWindow and MonthlyWindow are the rolling 7- and 30-day windows of a subscription
// that started at startsAt.
func WeeklyWindow(startsAt, now time.Time) Window { return RollingWindow(startsAt, WeekPeriod, now) }

// MonthlyWindow: see WeeklyWindow.
func MonthlyWindow(startsAt, now time.Time) Window { return RollingWindow(startsAt, MonthPeriod, now) }

// Windows are the three current windows of a subscription.
type Windows struct {
	Daily, Weekly, Monthly Window
}

// CurrentWindows computes the windows of a subscription that started at startsAt, at now,
// with days in loc.
func CurrentWindows(startsAt, now time.Time, loc *time.Location) Windows {
	return Windows{
		Daily:   DailyWindow(now, loc),
		Weekly:  WeeklyWindow(startsAt, now),
		Monthly: MonthlyWindow(startsAt, now),
	}
}

// UsedNow is the usage to count in the current window cur of an amount used recorded with
// the start of its window: an amount from an older window counts as 0. A start later than
// cur's (another instance's clock ran ahead) still counts, so clock skew never forgives
// usage.
func UsedNow(used int64, usedStart *time.Time, cur Window) int64 {
	if usedStart == nil || usedStart.Before(cur.Start) {
		return 0
	}
	return used
}

// location is the time zone of daily windows; nil = UTC.
var location atomic.Pointer[time.Location]

// SetLocation sets the time zone of daily windows for the whole process
// (POOLGATE_BILLING_TIMEZONE, read at start). nil restores UTC.
func SetLocation(loc *time.Location) { location.Store(loc) }

// Location is the time zone of daily windows.
func Location() *time.Location {
	if loc := location.Load(); loc != nil {
		return loc
	}
	return time.UTC
}
