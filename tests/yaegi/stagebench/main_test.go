package main

import "testing"

// Every stage runs under Yaegi (and natively when built with -tags stagebench): the stage
// code is the plugin's own, so a change that breaks it under the interpreter fails here
// rather than in make bench. No timing is asserted.
func TestStagesRun(t *testing.T) {
	ctl := startControl()
	defer ctl.Close()
	interpreted, cleanup, err := loadInterpreted()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	impls := map[string]stageFunc{"yaegi": interpreted}
	if native != nil {
		impls["native"] = native
	}
	for _, s := range stages {
		for name, fn := range impls {
			t.Run(s.name+"/"+name, func(t *testing.T) {
				ns, e := fn(s.name, ctl.URL, 3)
				if e != "" {
					t.Fatalf("%s: %s", s.name, e)
				}
				if ns <= 0 {
					t.Fatalf("%s: %d ns per run", s.name, ns)
				}
			})
		}
	}
	if _, e := interpreted("no-such-stage", ctl.URL, 1); e == "" {
		t.Fatal("an unknown stage ran")
	}
}
