package config

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Secrets and listeners (docs/design.md, "Listeners"; docs/security.md). The admin token
// and the plugin secret are at least MinSecretBytes long, given directly or as a file
// holding them (a mounted secret keeps them out of the process environment). During a
// rotation of the plugin secret controlsvc accepts the current one and the previous one, so
// the gateways can move to the new secret one after the other without a refused call.
const (
	EnvAdminTokenFile           = "POOLGATE_ADMIN_TOKEN_FILE"
	EnvPluginSecretFile         = "POOLGATE_PLUGIN_SECRET_FILE"
	EnvPluginSecretPrevious     = "POOLGATE_PLUGIN_SECRET_PREVIOUS"
	EnvPluginSecretPreviousFile = "POOLGATE_PLUGIN_SECRET_PREVIOUS_FILE"

	// EnvAdminListen is the admin API's listener, EnvMetricsListen the one of /metrics: each
	// apart from the internal API (EnvListen), so that one exposure cannot reach the others.
	EnvAdminListen   = "POOLGATE_ADMIN_LISTEN"
	EnvMetricsListen = "POOLGATE_METRICS_LISTEN"
)

const (
	// MinSecretBytes is the shortest admin token or plugin secret accepted: 32 bytes, the
	// length of `openssl rand -hex 16`, out of reach of guessing over the network.
	MinSecretBytes = 32
	// MaxSecretBytes bounds them, so that comparing a presented value stays cheap (the
	// services refuse longer presented values before hashing them).
	MaxSecretBytes = 256

	DefaultAdminListen   = "127.0.0.1:8091"
	DefaultMetricsListen = "127.0.0.1:8092"
)

// secretFromEnv reads the value of env, or of the file fileEnv names (one trailing newline
// dropped, as editors and `echo` write it). name is the variable it came from, for errors;
// "" when neither is set.
func secretFromEnv(env, fileEnv string) (value, name string, err error) {
	value, path := os.Getenv(env), strings.TrimSpace(os.Getenv(fileEnv))
	switch {
	case value != "" && path != "":
		return "", "", fmt.Errorf("%s and %s are both set: set one", env, fileEnv)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("%s: reading the file: %w", fileEnv, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		return v, fileEnv, nil
	case value != "":
		return value, env, nil
	}
	return "", "", nil
}

// secretVars name the variables the secrets came from (X or X_FILE), for errors.
type secretVars struct{ admin, plugin, previous string }

// readSecrets fills the admin token and the plugin secrets of c from the environment;
// validate checks them.
func (c *Config) readSecrets() (secretVars, error) {
	var v secretVars
	var err error
	if c.AdminToken, v.admin, err = secretFromEnv(EnvAdminToken, EnvAdminTokenFile); err != nil {
		return v, err
	}
	if c.PluginSecret, v.plugin, err = secretFromEnv(EnvPluginSecret, EnvPluginSecretFile); err != nil {
		return v, err
	}
	if c.PluginSecretPrevious, v.previous, err = secretFromEnv(EnvPluginSecretPrevious, EnvPluginSecretPreviousFile); err != nil {
		return v, err
	}
	v.admin, v.plugin, v.previous = valueOr(v.admin, EnvAdminToken), valueOr(v.plugin, EnvPluginSecret), valueOr(v.previous, EnvPluginSecretPrevious)
	return v, nil
}

// checkSecret fails on a secret that is missing, padded with blanks, too short or too long,
// naming the variable it came from (or the one to set) and never echoing the value.
func checkSecret(name, v string) error {
	if v == "" {
		return missing(name)
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("%s: %w", name, errWhitespace)
	}
	if len(v) < MinSecretBytes {
		return fmt.Errorf("%s: %d bytes is too short, at least %d are required (e.g. openssl rand -hex 32)", name, len(v), MinSecretBytes)
	}
	if len(v) > MaxSecretBytes {
		return fmt.Errorf("%s: %d bytes is too long, at most %d", name, len(v), MaxSecretBytes)
	}
	return nil
}

// checkSecrets validates the admin token and the plugin secrets.
func (c Config) checkSecrets(vars secretVars) error {
	if err := checkSecret(vars.admin, c.AdminToken); err != nil {
		return err
	}
	if err := checkSecret(vars.plugin, c.PluginSecret); err != nil {
		return err
	}
	if c.PluginSecretPrevious != "" {
		if err := checkSecret(vars.previous, c.PluginSecretPrevious); err != nil {
			return err
		}
	}
	if c.AdminToken == c.PluginSecret || (c.PluginSecretPrevious != "" && c.AdminToken == c.PluginSecretPrevious) {
		return fmt.Errorf("%s and %s are the same value: the plugin secret must not open the admin API", EnvAdminToken, EnvPluginSecret)
	}
	return nil
}

// checkListeners validates the three listen addresses, which must differ.
func (c Config) checkListeners() error {
	seen := map[string]string{}
	for _, l := range []struct{ name, addr string }{
		{EnvListen, c.Listen}, {EnvAdminListen, c.AdminListen}, {EnvMetricsListen, c.MetricsListen},
	} {
		if _, port, err := net.SplitHostPort(l.addr); err != nil || port == "" {
			return fmt.Errorf("%s: %q is not a host:port address", l.name, l.addr)
		}
		if other, dup := seen[l.addr]; dup && !strings.HasSuffix(l.addr, ":0") {
			return fmt.Errorf("%s and %s are both %q: the internal API, the admin API and /metrics each need their own listener", other, l.name, l.addr)
		}
		seen[l.addr] = l.name
	}
	return nil
}
