//go:build stagebench

package main

import (
	"os"
	"runtime/pprof"
)

// STAGEBENCH_PROF=<file> STAGEBENCH_STAGE=<stage> [STAGEBENCH_YAEGI=1]: a CPU profile of one
// stage instead of the table, to see where its time goes.
func init() {
	p := os.Getenv("STAGEBENCH_PROF")
	if p == "" {
		return
	}
	ctl := startControl()
	fn := native
	if os.Getenv("STAGEBENCH_YAEGI") != "" {
		f, _, err := loadInterpreted()
		if err != nil {
			panic(err)
		}
		fn = f
	}
	n := 20000
	if os.Getenv("STAGEBENCH_STAGE") == "relay-event" {
		n = 200
	}
	fn(os.Getenv("STAGEBENCH_STAGE"), ctl.URL, 20)
	f, _ := os.Create(p)
	_ = pprof.StartCPUProfile(f)
	fn(os.Getenv("STAGEBENCH_STAGE"), ctl.URL, n)
	pprof.StopCPUProfile()
	f.Close()
	os.Exit(0)
}
