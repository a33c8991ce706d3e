package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Sticky sessions (docs/design.md, "Sticky sessions"): requests of one conversation should
// reach the same upstream account, whose prompt cache then serves them. controlsvc binds
// (group, session hash) to an account; the plugin derives the hash, because it holds the
// decoded body. The seed is the first present of the session ids agents send (Claude Code's
// header and metadata.user_id, the session headers, the body's prompt_cache_key), and else
// a content seed made of what stays the same across the turns of a conversation: the model,
// the instructions or system text and the first user message (docs/design.md, "Sticky
// sessions"), ended by the hash of the API key so that unrelated users who send the same
// first message never share a binding. The hash is the hex SHA-256 of the seed, which
// controlsvc checks (gateway/admission/sticky.go). The admit request says which kind of
// seed it is (session_source): a content-seeded session never waits for its sticky account
// while another one is free.

// claudeCodeSessionHeader is Claude Code's own session header (v2.1.86 and later); it comes
// before everything else, then the session part of its metadata.user_id.
const claudeCodeSessionHeader = "X-Claude-Code-Session-Id"

// sessionHeaders carry a client's explicit session id, in order of precedence after Claude
// Code's: Codex sent session_id (and conversation_id) and now sends session-id; the last two
// are other clients' spellings.
// They are canonical, as net/http keys a request's headers, so that a lookup is a map
// index rather than a Get call (a compiled call per name under Yaegi).
var sessionHeaders = canonical("session_id", "session-id", "conversation_id", "x-session-id", "x-session-affinity")

// headerValue is h.Get(name) for a canonical name, trimmed.
func headerValue(h http.Header, name string) string {
	if vv := h[name]; len(vv) > 0 && vv[0] != "" {
		return strings.TrimSpace(vv[0])
	}
	return ""
}

// Prefixes keep an explicit session id from ever equalling a content seed.
const (
	explicitSeedPrefix = "session:"
	contentSeedPrefix  = "content:"
)

// Session sources of the admit request (session_source).
const (
	sessionSourceExplicit = "explicit"
	sessionSourceContent  = "content"
)

// sessionHash returns the hex SHA-256 of the request's session seed.
func sessionHash(path string, h http.Header, info *requestInfo, apiKey string) string {
	return hashSeed(sessionSeed(path, h, info, apiKey))
}

// hashSeed is the hex SHA-256 of a seed.
func hashSeed(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

// seedSource is the session_source of a seed.
func seedSource(seed string) string {
	if strings.HasPrefix(seed, explicitSeedPrefix) {
		return sessionSourceExplicit
	}
	return sessionSourceContent
}

// sessionSeed picks the seed: Claude Code's session header, the session part of
// metadata.user_id, a session header, prompt_cache_key, else the content. Every explicit id
// gets the same prefix, so a Claude Code turn seeded by its header and one seeded by its
// user_id (the same uuid) share a binding.
func sessionSeed(path string, h http.Header, info *requestInfo, apiKey string) string {
	if v := headerValue(h, claudeCodeSessionHeader); v != "" {
		return explicitSeedPrefix + v
	}
	if md := info.fields.Metadata; len(md) > 0 && md[0] == '{' { // a call costs µs under Yaegi, even one that returns at once
		if v := metadataSession(md); v != "" {
			return explicitSeedPrefix + v
		}
	}
	for i := 0; i < len(sessionHeaders); i++ {
		if v := headerValue(h, sessionHeaders[i]); v != "" {
			return explicitSeedPrefix + v
		}
	}
	if k, ok := jsonsse.String(info.fields.PromptCacheKey); ok && strings.TrimSpace(k) != "" {
		return explicitSeedPrefix + k
	}
	return contentSeed(path, info, apiKey)
}

// userIDSessionMark separates the session uuid in Claude Code's older user_id,
// "user_<hex>_account_<uuid or empty>_session_<uuid>".
const userIDSessionMark = "_session_"

// metadataSession is the session id in metadata.user_id, "" when there is none. Claude Code
// sent "user_<hex>_account_<uuid>_session_<uuid>" and since v2.1.78 sends a JSON string,
// {"device_id":…,"account_uuid":…,"session_id":…}. Any other user_id (a plain user name)
// names a user, not a conversation, and is no seed. Only the small metadata object is
// decoded, and only when the body has one.
func metadataSession(raw []byte) string {
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	var md struct {
		UserID json.RawMessage `json:"user_id"`
	}
	if json.Unmarshal(raw, &md) != nil {
		return ""
	}
	uid, ok := jsonsse.String(md.UserID)
	if !ok {
		return ""
	}
	uid = strings.TrimSpace(uid)
	if strings.HasPrefix(uid, "{") {
		var j struct {
			SessionID json.RawMessage `json:"session_id"`
		}
		if json.Unmarshal([]byte(uid), &j) != nil {
			return ""
		}
		sid, _ := jsonsse.String(j.SessionID)
		return strings.TrimSpace(sid)
	}
	if i := strings.LastIndex(uid, userIDSessionMark); i >= 0 {
		return strings.TrimSpace(uid[i+len(userIDSessionMark):])
	}
	return ""
}

// contentSeed is "content:model=<m>|system=<…>|first_user=<…>|key=<hex SHA-256 of the API
// key>". Message contents are taken as the raw JSON the client sent (a string or an array
// of parts): a client repeats them byte for byte on every turn, and nothing needs decoding.
// The key's hash has a fixed length at the end, so no first message can make two keys'
// seeds equal.
func contentSeed(path string, info *requestInfo, apiKey string) string {
	var system, firstUser string
	switch path {
	case pathResponses:
		system = textOf(info.fields.Instructions)
		if s, ok := jsonsse.String(info.fields.Input); ok {
			firstUser = s
		} else if items, ok := inputItems(info); ok {
			sys, user := systemAndFirstUser(items)
			system += sys
			firstUser = user
		}
	case pathMessages:
		system = textOf(info.fields.System)
		if items, ok := decodeInputItems(info.fields.Messages); ok {
			_, firstUser = systemAndFirstUser(items)
		}
	default: // Chat Completions: system and developer messages are part of messages
		if items, ok := decodeInputItems(info.fields.Messages); ok {
			system, firstUser = systemAndFirstUser(items)
		}
	}
	return contentSeedPrefix + "model=" + info.model + "|system=" + system + "|first_user=" + firstUser +
		"|key=" + hashSeed(apiKey)
}

// systemAndFirstUser returns the contents of the system and developer messages before the
// first user message, and that message's content. It stops at the first user message.
func systemAndFirstUser(items []inputItem) (string, string) {
	system := ""
	for i := 0; i < len(items); i++ {
		it := &items[i] // no copy of the item per field read
		switch it.Role {
		case "user":
			return system, textOf(it.Content)
		case "system", "developer":
			system += "\n" + textOf(it.Content)
		}
	}
	return system, ""
}

// textOf returns a JSON string's value, or any other JSON value as it was sent.
func textOf(raw []byte) string {
	if s, ok := jsonsse.String(raw); ok {
		return s
	}
	if jsonsse.IsNull(raw) {
		return ""
	}
	return string(raw)
}
