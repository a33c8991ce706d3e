package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// responsesStream renders a Responses stream the way the converter and the fake upstream
// send it for convText(convDeltas); edit changes the event list before rendering.
func responsesStream(edit func([]string) []string) []byte {
	events := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	deltas := strings.SplitAfter(convText(convDeltas), " ")
	for range deltas {
		events = append(events, "response.output_text.delta")
	}
	events = append(events, "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed")
	if edit != nil {
		events = edit(events)
	}
	var b strings.Builder
	b.WriteString(": keep-alive\n")
	d := 0
	for i, e := range events {
		if e == "response.output_text.delta" && d < len(deltas) {
			fmt.Fprintf(&b, "event: %s\ndata: {\"type\":%q,\"sequence_number\":%d,\"delta\":%q}\n\n", e, e, i, deltas[d])
			d++
			continue
		}
		fmt.Fprintf(&b, "event: %s\ndata: {\"type\":%q,\"sequence_number\":%d}\n\n", e, e, i)
	}
	return []byte(b.String())
}

var convertedCase = streamCase{deltaEvent: "response.output_text.delta", lastEvent: "response.completed",
	events: convDeltas + 8, responses: true}

func TestCheckStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    []byte
		wantErr string // "" passes both checks
	}{
		{name: "complete", give: responsesStream(nil)},
		{name: "failed instead of completed", wantErr: "ended with \"response.failed\"",
			give: responsesStream(func(e []string) []string { e[len(e)-1] = "response.failed"; return e })},
		{name: "a delta missing", wantErr: "events with 1999",
			give: responsesStream(func(e []string) []string { return append(e[:5], e[6:]...) })},
		{name: "an extra event", wantErr: "2009 events",
			give: responsesStream(func(e []string) []string { return append([]string{"response.queued"}, e...) })},
		{name: "sequence out of order", wantErr: "sequence_number",
			give: []byte(strings.Replace(string(responsesStream(nil)), `"sequence_number":7,`, `"sequence_number":8,`, 1))},
		{name: "a delta changed", wantErr: "deltas join",
			give: []byte(strings.Replace(string(responsesStream(nil)), `"delta":"of "`, `"delta":"off "`, 1))},
		{name: "data not JSON", wantErr: "not JSON",
			give: []byte(strings.Replace(string(responsesStream(nil)), `{"type":"response.created"`, `{"type":response.created"`, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			frames := parseFrames(tt.give)
			err := checkStream(convertedCase, frames)
			if err == nil {
				err = checkStreamDeep(convertedCase, frames)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check failed: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("check error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTraefikCPU(t *testing.T) {
	t.Parallel()
	rusage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, err := traefikCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	r0 := rusage()
	// Spin until the kernel counted 100 ms of CPU, however loaded the machine is.
	for deadline := time.Now().Add(20 * time.Second); rusage()-r0 < 100*time.Millisecond && time.Now().Before(deadline); {
	}
	after, err := traefikCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got, want := after-before, rusage()-r0
	if got < want-50*time.Millisecond || got > want+50*time.Millisecond {
		t.Errorf("/proc/<pid>/stat counted %s of CPU time where getrusage counted %s", got, want)
	}
	if _, err := traefikCPU(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
