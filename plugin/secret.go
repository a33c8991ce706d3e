package plugin

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// The plugin secret (docs/security.md, "Secrets"). Traefik logs its dynamic configuration
// at debug level, so a secret written there ends up in logs; pluginSecretFile names a file
// holding it instead, and only the path is ever in the configuration. The file is read
// lazily, on the first call to controlsvc (New does no I/O), and again every
// secretFileRefresh, so a rotation needs no reload: write the new secret to the file while
// controlsvc accepts the old and the new one (POOLGATE_PLUGIN_SECRET_PREVIOUS), wait
// secretFileRefresh, then retire the old one.

// secretFileRefresh is how long a secret read from its file is used before the file is
// read again.
const secretFileRefresh = 10 * time.Second

// fileSpecPrefix marks a secret spec naming a file: specs key the shared control objects
// (controlFor), and a configured secret cannot start with a NUL byte.
const fileSpecPrefix = "\x00file:"

var (
	errSecretBoth  = errors.New("pluginSecret and pluginSecretFile are both set: set one")
	errSecretEmpty = errors.New("the secret file is empty")
)

// secretSpec is the spec of cfg's secret: the secret itself, or fileSpecPrefix + path.
func secretSpec(cfg *Config) (string, error) {
	file := strings.TrimSpace(cfg.PluginSecretFile)
	switch {
	case cfg.PluginSecret != "" && file != "":
		return "", errSecretBoth
	case file != "":
		return fileSpecPrefix + file, nil
	case cfg.PluginSecret != "":
		return cfg.PluginSecret, nil
	}
	return "", errMissingSecret
}

// secretSource yields the secret a spec names.
type secretSource struct {
	value string // a secret given directly; "" when it comes from path
	path  string

	mu     sync.Mutex
	cached string
	readAt time.Time
}

func newSecretSource(spec string) *secretSource {
	if strings.HasPrefix(spec, fileSpecPrefix) {
		return &secretSource{path: spec[len(fileSpecPrefix):]}
	}
	return &secretSource{value: spec}
}

// get returns the secret. A file is re-read once secretFileRefresh has passed; when a
// re-read fails the secret read before stays in use, so a file being replaced cannot fail
// calls.
func get(s *secretSource) (string, error) {
	if s.path == "" {
		return s.value, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.cached != "" && now.Sub(s.readAt) < secretFileRefresh {
		return s.cached, nil
	}
	v, err := readSecretFile(s.path)
	if err != nil {
		if s.cached != "" {
			s.readAt = now // try again after another refresh period
			return s.cached, nil
		}
		return "", err
	}
	s.cached, s.readAt = v, now
	return v, nil
}

// readSecretFile reads a secret file: its content less one trailing newline.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading pluginSecretFile: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("pluginSecretFile %s: %w", path, errSecretEmpty)
	}
	return v, nil
}
