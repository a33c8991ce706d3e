package fakeupstream

// Anthropic's prompt cache, as far as tests need it (docs/design.md, "Conversion rules for
// agents"): a /v1/messages request that carries cache_control breakpoints marks its
// credential's prompt as cached. A script with PromptCache reports that many tokens as
// written to the cache on the credential's first such request and as read from it on every
// later one, so a test sees a second turn's cache reads.

import (
	"bytes"
	"sync"
)

type promptCache struct {
	mu   sync.Mutex
	seen map[string]bool
}

// mark records a cached prompt of key and reports whether one was recorded before.
func (p *promptCache) mark(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = make(map[string]bool)
	}
	before := p.seen[key]
	p.seen[key] = true
	return before
}

func (p *promptCache) reset() {
	p.mu.Lock()
	p.seen = nil
	p.mu.Unlock()
}

// withPromptCache applies the prompt cache to a request's script: a request with
// breakpoints marks the credential; a PromptCache script then reports its tokens as a
// cache write (first) or read (later), on top of its other input.
func (s *Server) withPromptCache(a api, key string, body []byte, sc Script) Script {
	if a != apiMessages || !bytes.Contains(body, []byte(`"cache_control"`)) {
		return sc
	}
	before := s.cache.mark(key)
	if sc.PromptCache <= 0 {
		return sc
	}
	u := sc.usage()
	u.InputTokens += sc.PromptCache
	if before {
		u.CachedTokens += sc.PromptCache
	} else {
		u.CacheCreationTokens += sc.PromptCache
	}
	sc.Usage = &u
	return sc
}
