package gateway

import (
	"testing"
	"time"
)

import ()

func TestLogSampler(t *testing.T) {
	t.Parallel()
	l := newLogSampler()
	now := time.Unix(1000, 0)
	for i := 0; i < sampleBurst; i++ {
		if ok, sup := l.allow("auth", now); !ok || sup != 0 {
			t.Fatalf("line %d: allow = %v, %d; want true, 0", i, ok, sup)
		}
	}
	for i := 0; i < 7; i++ {
		if ok, _ := l.allow("auth", now.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatalf("line %d over the burst was allowed", sampleBurst+i)
		}
	}
	if ok, _ := l.allow("billing", now); !ok {
		t.Fatal("another reason was held back by auth's burst")
	}
	if ok, sup := l.allow("auth", now.Add(sampleWindow)); !ok || sup != 7 {
		t.Fatalf("next window: allow = %v, suppressed %d; want true, 7", ok, sup)
	}
}
