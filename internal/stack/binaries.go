package stack

import (
	"fmt"
	"os"
	"path/filepath"
)

// TestOptions are the Options of a test stack in dir from the checkout at repoRoot: the
// binaries from $POOLGATE_BIN_DIR, else repoRoot/bin, each checked to exist so that a test
// run without them fails with the command that builds them.
func TestOptions(repoRoot, dir string) (Options, error) {
	bin := os.Getenv("POOLGATE_BIN_DIR")
	if bin == "" {
		bin = filepath.Join(repoRoot, "bin")
	}
	for _, b := range []string{"traefik", "controlsvc", "fakeupstream"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return Options{}, fmt.Errorf("%s missing in %s: run `make build traefik` (or `make test`)", b, bin)
		}
	}
	return Options{
		Dir:             dir,
		RepoRoot:        repoRoot,
		TraefikBin:      filepath.Join(bin, "traefik"),
		ControlsvcBin:   filepath.Join(bin, "controlsvc"),
		FakeupstreamBin: filepath.Join(bin, "fakeupstream"),
	}, nil
}
