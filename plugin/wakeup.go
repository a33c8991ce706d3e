package plugin

import (
	"sync"
	"time"
)

// wakeup is a one-slot signal that any goroutine raises without blocking and one goroutine
// waits on, with an optional timeout, and no select statement: Yaegi v0.16.1 races
// concurrent executions of one select (docs/design.md, "Writing plugin code"), and the
// background loops (one report sender and one lease renewer per control service address
// list) may run more than once at a time, e.g. after a configuration reload that changed
// the addresses. A raise while one is pending is merged into it; a late timer may leave
// one spurious wake, which the loops treat as a wake for nothing.
type wakeup struct {
	mu      sync.Mutex
	pending bool
	ch      chan struct{}
}

func newWakeup() *wakeup { return &wakeup{ch: make(chan struct{}, 1)} }

// raise wakes the waiter, now or at its next wait.
func (w *wakeup) raise() {
	w.mu.Lock()
	if w.pending {
		w.mu.Unlock()
		return
	}
	w.pending = true
	w.mu.Unlock()
	w.ch <- struct{}{} // cannot block: the slot is empty while nothing is pending
}

// wait blocks until a raise or, when d > 0, until d has passed.
func (w *wakeup) wait(d time.Duration) {
	var t *time.Timer
	if d > 0 {
		t = time.AfterFunc(d, w.raise) // a method value made here (docs/design.md)
	}
	<-w.ch
	w.mu.Lock()
	w.pending = false
	w.mu.Unlock()
	if t != nil {
		t.Stop()
	}
}
