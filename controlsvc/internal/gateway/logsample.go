package gateway

import (
	"sync"
	"time"
)

// Refusal logs are sampled: a client can cause refusals at any rate (random keys, bad
// bodies), and one log line each would let it flood the log. Per reason, at most
// sampleBurst lines go out per sampleWindow; the rest are counted and the count rides on the
// next line that goes out, as "suppressed".
const (
	sampleWindow = time.Second
	sampleBurst  = 5
	// maxLogField bounds a client-supplied value (model, path, request id) in a log line.
	maxLogField = 64
)

// logSampler decides which refusal lines are written. Its keys are refusal reasons, a fixed
// set of constants, never client input, so the map stays small.
type logSampler struct {
	mu      sync.Mutex
	reasons map[string]*sampleCount
}

type sampleCount struct {
	windowStart time.Time
	written     int
	suppressed  int64
}

func newLogSampler() *logSampler {
	return &logSampler{reasons: make(map[string]*sampleCount)}
}

// allow reports whether a line for reason may be written at now, and how many lines of
// that reason were suppressed since the last one written.
func (l *logSampler) allow(reason string, now time.Time) (ok bool, suppressed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.reasons[reason]
	if c == nil {
		c = &sampleCount{windowStart: now}
		l.reasons[reason] = c
	}
	if now.Sub(c.windowStart) >= sampleWindow {
		c.windowStart, c.written = now, 0
	}
	if c.written >= sampleBurst {
		c.suppressed++
		return false, 0
	}
	c.written++
	suppressed, c.suppressed = c.suppressed, 0
	return true, suppressed
}
