package main

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
	"github.com/poolgate/poolgate/internal/testenv"
)

// profTargets are the debug addresses of the goals' stack when -pprof is set: Traefik's
// API entrypoint and controlsvc's net/http/pprof listener. The zero value profiles nothing.
type profTargets struct {
	dir                 string
	traefik, controlsvc string // base URLs
}

// profOptions turns on the debug listeners of the stack that opts will start.
func profOptions(opts *stack.Options, dir string) (profTargets, error) {
	ta, err := testenv.FreeAddr()
	if err != nil {
		return profTargets{}, err
	}
	ca, err := testenv.FreeAddr()
	if err != nil {
		return profTargets{}, err
	}
	opts.TraefikDebugAddr = ta
	opts.ControlsvcEnv = append(opts.ControlsvcEnv, "POOLGATE_PPROF_ADDR="+ca)
	return profTargets{dir: dir, traefik: "http://" + ta, controlsvc: "http://" + ca}, nil
}

// cpu starts CPU profiles of Traefik and controlsvc covering a gateway case of length dur
// and returns the function that waits for them; other targets and a zero p get a no-op.
// The files are named after the case (gateway-json-1-traefik-cpu.pb.gz).
func (p profTargets) cpu(c goalCase, dur time.Duration) func() {
	if p.dir == "" || c.target != tgGateway {
		return func() {}
	}
	secs := int(dur / time.Second)
	if secs < 1 {
		secs = 1
	}
	var wg sync.WaitGroup
	for _, t := range []struct{ name, url string }{{"traefik", p.traefik}, {"controlsvc", p.controlsvc}} {
		t := t
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(p.dir, fmt.Sprintf("gateway-%s-%d-%s-cpu.pb.gz", c.mode, c.conc, t.name))
			if err := saveProfile(t.url, fmt.Sprintf("profile?seconds=%d", secs), path); err != nil {
				fmt.Printf("        %s CPU profile: %v\n", t.name, err)
			}
		}()
	}
	return func() {
		wg.Wait()
		fmt.Printf("        CPU profiles: %s\n", filepath.Join(p.dir, fmt.Sprintf("gateway-%s-%d-{traefik,controlsvc}-cpu.pb.gz", c.mode, c.conc)))
	}
}
