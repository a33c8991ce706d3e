package fakeupstream

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// credentialScripts holds the scripts programmed per API key.
type credentialScripts struct {
	mu      sync.Mutex
	scripts map[string]*credentialScript
}

type credentialScript struct {
	script    Script
	remaining int // requests left when script.Times > 0
}

func (c *credentialScripts) set(key string, s Script) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scripts == nil {
		c.scripts = make(map[string]*credentialScript)
	}
	c.scripts[key] = &credentialScript{script: s, remaining: s.Times}
}

func (c *credentialScripts) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.scripts, key)
}

func (c *credentialScripts) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scripts = nil
}

// take returns the script for key and counts one use of it.
func (c *credentialScripts) take(key string) (Script, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.scripts[key]
	if !ok {
		return Script{}, false
	}
	if cs.script.Times > 0 {
		cs.remaining--
		if cs.remaining <= 0 {
			delete(c.scripts, key)
		}
	}
	return cs.script, true
}

// credential returns the API key a request carries, the way the providers
// read it: Authorization Bearer (OpenAI), x-api-key (Anthropic),
// x-goog-api-key (Gemini).
func credential(r *http.Request) string {
	if v := r.Header.Get("Authorization"); v != "" {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
		return strings.TrimSpace(v)
	}
	if v := r.Header.Get("x-api-key"); v != "" {
		return v
	}
	return r.Header.Get("x-goog-api-key")
}

// failShorthand reads a credential of the form "fail:<status>".
func failShorthand(key string) (Script, bool) {
	rest, ok := strings.CutPrefix(key, "fail:")
	if !ok {
		return Script{}, false
	}
	code, err := strconv.Atoi(rest)
	if err != nil || code < 100 || code > 599 {
		return Script{}, false
	}
	return Script{Status: code}, true
}
