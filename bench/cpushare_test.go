package main

import (
	"os/exec"
	"testing"
	"time"
)

// A tree's CPU counts its live descendants and the ones it already reaped.
func TestTreeCPUCountsDescendants(t *testing.T) {
	// The root does no work itself: a busy child in the background stays alive (sleeping)
	// under it, and a busy child in the foreground exits and is reaped by it.
	const busy = `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`
	cmd := exec.Command("sh", "-c", `sh -c '`+busy+`; sleep 30' & sh -c '`+busy+`'; sleep 30`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	const least = 50 * time.Millisecond
	deadline := time.Now().Add(60 * time.Second)
	var tree, root time.Duration
	for time.Now().Before(deadline) {
		tree = treeCPU([]int{cmd.Process.Pid})[0]
		_, own := procTimes()
		root = own[cmd.Process.Pid] // its own time and its reaped child's
		if root >= least && tree-root >= least {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("tree %v, root with reaped children %v: want both the reaped and the live child's time (>= %v each)", tree, root, least)
}
