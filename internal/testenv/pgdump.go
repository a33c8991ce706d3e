package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// PGDump returns pg_dump's plain-SQL dump of the database dbURL connects to, made with the
// binaries the throwaway servers use (so its version matches theirs).
func PGDump(ctx context.Context, dbURL string) ([]byte, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_dump"), "--no-owner", "--dbname", dbURL)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("pg_dump: %w\n%s", err, tail([]byte(stderr)))
	}
	return out, nil
}
