package billing

import (
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("loading zone %s: %v", name, err)
	}
	return loc
}

func utc(s string) time.Time {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestDailyWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		zone      string
		now       string
		wantStart string
		wantEnd   string
		wantHours float64
	}{
		{"utc middle of the day", "UTC", "2024-05-10T13:45:00Z", "2024-05-10T00:00:00Z", "2024-05-11T00:00:00Z", 24},
		{"utc first instant", "UTC", "2024-05-10T00:00:00Z", "2024-05-10T00:00:00Z", "2024-05-11T00:00:00Z", 24},
		{"utc last instant", "UTC", "2024-05-10T23:59:59.999999999Z", "2024-05-10T00:00:00Z", "2024-05-11T00:00:00Z", 24},
		{"utc month end", "UTC", "2024-02-29T12:00:00Z", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", 24},
		// Berlin is UTC+1 in winter, +2 in summer: midnight is 23:00Z or 22:00Z the day before.
		{"berlin winter", "Europe/Berlin", "2024-01-15T12:00:00Z", "2024-01-14T23:00:00Z", "2024-01-15T23:00:00Z", 24},
		{"berlin summer", "Europe/Berlin", "2024-07-15T12:00:00Z", "2024-07-14T22:00:00Z", "2024-07-15T22:00:00Z", 24},
		{"berlin local date differs from utc date", "Europe/Berlin", "2024-07-15T22:30:00Z", "2024-07-15T22:00:00Z", "2024-07-16T22:00:00Z", 24},
		{"berlin just before local midnight", "Europe/Berlin", "2024-07-15T21:59:59Z", "2024-07-14T22:00:00Z", "2024-07-15T22:00:00Z", 24},
		// 2024-03-31: clocks jump 02:00 → 03:00, a 23-hour day.
		{"berlin spring forward, before the jump", "Europe/Berlin", "2024-03-31T00:30:00Z", "2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z", 23},
		{"berlin spring forward, after the jump", "Europe/Berlin", "2024-03-31T01:00:00Z", "2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z", 23},
		{"berlin day after spring forward", "Europe/Berlin", "2024-03-31T22:00:00Z", "2024-03-31T22:00:00Z", "2024-04-01T22:00:00Z", 24},
		// 2024-10-27: clocks go back 03:00 → 02:00, a 25-hour day.
		{"berlin fall back, first 02:30", "Europe/Berlin", "2024-10-27T00:30:00Z", "2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z", 25},
		{"berlin fall back, second 02:30", "Europe/Berlin", "2024-10-27T01:30:00Z", "2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z", 25},
		{"berlin fall back, last instant", "Europe/Berlin", "2024-10-27T22:59:59Z", "2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z", 25},
		{"berlin day before fall back", "Europe/Berlin", "2024-10-26T21:00:00Z", "2024-10-25T22:00:00Z", "2024-10-26T22:00:00Z", 24},
		// São Paulo 2018-11-04: clocks jumped 00:00 → 01:00, so the day began at 01:00 (03:00Z).
		{"sao paulo skipped midnight", "America/Sao_Paulo", "2018-11-04T12:00:00Z", "2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z", 23},
		{"sao paulo day before skipped midnight", "America/Sao_Paulo", "2018-11-04T02:59:59Z", "2018-11-03T03:00:00Z", "2018-11-04T03:00:00Z", 24},
		// Havana 2023-11-05: clocks went back 01:00 → 00:00, midnight happened twice.
		{"havana repeated midnight", "America/Havana", "2023-11-05T04:30:00Z", "2023-11-05T04:00:00Z", "2023-11-06T05:00:00Z", 25},
		{"havana repeated midnight, second pass", "America/Havana", "2023-11-05T05:30:00Z", "2023-11-05T04:00:00Z", "2023-11-06T05:00:00Z", 25},
		// Santiago 2023-04-02: clocks went back at 24:00 to 23:00 of the 1st.
		{"santiago repeated last hour", "America/Santiago", "2023-04-02T03:30:00Z", "2023-04-01T03:00:00Z", "2023-04-02T04:00:00Z", 25},
		{"kathmandu quarter hour offset", "Asia/Kathmandu", "2024-05-10T18:14:00Z", "2024-05-09T18:15:00Z", "2024-05-10T18:15:00Z", 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			loc := mustZone(t, tt.zone)
			now := utc(tt.now)
			w := DailyWindow(now, loc)
			if !w.Start.Equal(utc(tt.wantStart)) || !w.End.Equal(utc(tt.wantEnd)) {
				t.Fatalf("DailyWindow(%s, %s) = [%s, %s), want [%s, %s)", tt.now, tt.zone,
					w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339), tt.wantStart, tt.wantEnd)
			}
			if !w.Contains(now) {
				t.Errorf("window [%s, %s) does not contain now %s", w.Start, w.End, now)
			}
			if h := w.End.Sub(w.Start).Hours(); h != tt.wantHours {
				t.Errorf("day length = %vh, want %vh", h, tt.wantHours)
			}
			// Windows tile: the previous instant's window ends where this one starts.
			if prev := DailyWindow(w.Start.Add(-time.Nanosecond), loc); !prev.End.Equal(w.Start) {
				t.Errorf("previous day ends %s, this day starts %s", prev.End, w.Start)
			}
			if y, m, d := w.Start.In(loc).Date(); y != now.In(loc).Year() || m != now.In(loc).Month() || d != now.In(loc).Day() {
				t.Errorf("window starts on local date %d-%02d-%02d, now is on %s", y, m, d, now.In(loc).Format("2006-01-02"))
			}
		})
	}
}

// Every day of a year in a DST zone: windows tile without gaps or overlaps and hold now.
func TestDailyWindowTilesAYear(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"Europe/Berlin", "America/Sao_Paulo", "America/Havana", "Australia/Lord_Howe", "UTC"} {
		loc := mustZone(t, zone)
		w := DailyWindow(utc("2018-01-01T12:00:00Z"), loc)
		for i := 0; i < 2*366; i++ {
			next := DailyWindow(w.End, loc)
			if !next.Start.Equal(w.End) || !next.End.After(next.Start) {
				t.Fatalf("%s: window after [%s, %s) is [%s, %s)", zone, w.Start, w.End, next.Start, next.End)
			}
			if h := next.End.Sub(next.Start).Hours(); h < 22 || h > 26 {
				t.Fatalf("%s: day [%s, %s) lasts %vh", zone, next.Start, next.End, h)
			}
			mid := next.Start.Add(next.End.Sub(next.Start) / 2)
			if got := DailyWindow(mid, loc); got != next {
				t.Fatalf("%s: DailyWindow(%s) = %+v, want %+v", zone, mid, got, next)
			}
			w = next
		}
	}
}

func TestRollingWindows(t *testing.T) {
	t.Parallel()
	start := utc("2024-03-30T10:00:00Z")
	tests := []struct {
		name      string
		period    time.Duration
		now       string
		wantStart string
	}{
		{"week at start", WeekPeriod, "2024-03-30T10:00:00Z", "2024-03-30T10:00:00Z"},
		{"week before start is window 0", WeekPeriod, "2024-03-29T10:00:00Z", "2024-03-30T10:00:00Z"},
		{"week last instant of window 0", WeekPeriod, "2024-04-06T09:59:59.999999999Z", "2024-03-30T10:00:00Z"},
		{"week first instant of window 1", WeekPeriod, "2024-04-06T10:00:00Z", "2024-04-06T10:00:00Z"},
		{"week 10", WeekPeriod, "2024-06-10T00:00:00Z", "2024-06-08T10:00:00Z"},
		// Rolling windows are exact periods of 24h days, unaffected by DST.
		{"month across DST", MonthPeriod, "2024-04-29T09:59:59Z", "2024-03-30T10:00:00Z"},
		{"month 1", MonthPeriod, "2024-04-29T10:00:00Z", "2024-04-29T10:00:00Z"},
		{"month 12 (360 days on)", MonthPeriod, "2025-03-26T00:00:00Z", "2025-03-25T10:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := utc(tt.now)
			w := RollingWindow(start, tt.period, now)
			if !w.Start.Equal(utc(tt.wantStart)) || w.End.Sub(w.Start) != tt.period {
				t.Errorf("RollingWindow(%s) = [%s, %s), want start %s and length %s", tt.now, w.Start, w.End, tt.wantStart, tt.period)
			}
			if !now.Before(start) && !w.Contains(now) {
				t.Errorf("window does not contain now")
			}
		})
	}
	ws := CurrentWindows(start, utc("2024-04-07T00:00:00Z"), mustZone(t, "Europe/Berlin"))
	if !ws.Weekly.Start.Equal(utc("2024-04-06T10:00:00Z")) || !ws.Monthly.Start.Equal(start) ||
		!ws.Daily.Start.Equal(utc("2024-04-06T22:00:00Z")) {
		t.Errorf("CurrentWindows = %+v", ws)
	}
}

func TestUsedNow(t *testing.T) {
	t.Parallel()
	cur := Window{Start: utc("2024-05-10T00:00:00Z"), End: utc("2024-05-11T00:00:00Z")}
	older, same, later := utc("2024-05-09T00:00:00Z"), cur.Start, utc("2024-05-11T00:00:00Z")
	tests := []struct {
		name  string
		start *time.Time
		want  int64
	}{
		{"never used", nil, 0},
		{"older window counts 0", &older, 0},
		{"current window counts", &same, 500},
		{"later window (clock skew) counts", &later, 500},
	}
	for _, tt := range tests {
		if got := UsedNow(500, tt.start, cur); got != tt.want {
			t.Errorf("%s: UsedNow = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestLocationSetting(t *testing.T) {
	// Not parallel: it changes the process-wide zone.
	if Location() != time.UTC {
		t.Fatalf("default Location() = %s, want UTC", Location())
	}
	berlin := mustZone(t, "Europe/Berlin")
	SetLocation(berlin)
	defer SetLocation(nil)
	if Location() != berlin {
		t.Errorf("Location() = %s after SetLocation(Berlin)", Location())
	}
	SetLocation(nil)
	if Location() != time.UTC {
		t.Errorf("Location() = %s after SetLocation(nil), want UTC", Location())
	}
}
