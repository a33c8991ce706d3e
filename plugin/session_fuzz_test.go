package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// FuzzSessionSeed: for any accepted body and session header, the hash is the hex SHA-256
// of the seed (what controlsvc checks), a non-blank session header wins and is the seed as
// sent, else the seed is prompt_cache_key's or the content seed of this model; the same
// request always gives the same hash, and the seed is at most a small multiple of the input
// (an invalid UTF-8 byte decodes to a three-byte U+FFFD).
func FuzzSessionSeed(f *testing.F) {
	f.Add([]byte(`{"model":"m","input":"hi"}`), "", uint8(0), uint8(0))
	f.Add([]byte(`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"u"}]}]}`), " sess-1 ", uint8(1), uint8(2))
	f.Add([]byte(`{"model":"m","prompt_cache_key":"  ","system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":"u"}]}`), "", uint8(2), uint8(4))
	f.Add([]byte(`{"model":"m","instructions":null,"input":[{"role":"developer","content":"d"},{"role":"user","content":null}]}`), "\t", uint8(0), uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, header string, pathSel, headerSel uint8) {
		if len(body)+len(header) > fuzzMaxInput {
			return
		}
		path := fuzzPaths[int(pathSel)%len(fuzzPaths)]
		info, e := validateBody(path, body)
		if e != nil {
			return
		}
		h := http.Header{}
		if i := int(headerSel) % (len(sessionHeaders) + 1); i < len(sessionHeaders) {
			h.Set(sessionHeaders[i], header)
		}
		seed := sessionSeed(path, h, &info, "sk-fuzz")
		hash := sessionHash(path, h, &info, "sk-fuzz")
		sum := sha256.Sum256([]byte(seed))
		if hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("hash %s is not the SHA-256 of the seed", hash)
		}
		if again := sessionHash(path, h, &info, "sk-fuzz"); again != hash {
			t.Fatalf("hash changed on a second call: %s, %s", hash, again)
		}
		fresh, _ := validateBody(path, body)
		if other := sessionHash(path, h.Clone(), &fresh, "sk-fuzz"); other != hash {
			t.Fatalf("hash depends on more than the request: %s, %s", hash, other)
		}
		if len(seed) > 3*len(body)+len(header)+160 {
			t.Fatalf("seed of %d bytes from %d+%d bytes of input", len(seed), len(body), len(header))
		}
		headerSeed := ""
		for i := 0; i < len(sessionHeaders) && headerSeed == ""; i++ {
			headerSeed = strings.TrimSpace(h.Get(sessionHeaders[i]))
		}
		switch {
		case headerSeed != "":
			if seed != explicitSeedPrefix+headerSeed {
				t.Fatalf("seed %q, header %q", seed, headerSeed)
			}
		case strings.HasPrefix(seed, explicitSeedPrefix):
			if k, _ := jsonsse.String(info.fields.PromptCacheKey); seed != explicitSeedPrefix+k || strings.TrimSpace(k) == "" {
				t.Fatalf("explicit seed %q without a header or prompt_cache_key", seed)
			}
		case !strings.HasPrefix(seed, contentSeedPrefix+"model="+info.model+"|system="):
			t.Fatalf("content seed %q lacks the model %q", seed, info.model)
		}
	})
}

// FuzzSessionSeedTurns: the content seed is what stays the same across the turns of one
// conversation. The second turn of a conversation (the first turn, the assistant's reply
// and a new user message) has the first turn's hash, on every endpoint, and a different
// first user message gives a different hash.
func FuzzSessionSeedTurns(f *testing.F) {
	f.Add("gpt-5", "be brief", "hello", "hi!", "and now?", "hello!", uint8(0))
	f.Add("claude", "", "\u2028", "", "", "x", uint8(2))
	f.Add("m", "sys\n", "\xff", "r", "u2", "\xfe", uint8(1))
	f.Fuzz(func(t *testing.T, model, system, user, reply, next, otherUser string, pathSel uint8) {
		if model == "" || len(model)+len(system)+len(user)+len(reply)+len(next)+len(otherUser) > fuzzMaxInput {
			return
		}
		path := fuzzPaths[int(pathSel)%len(fuzzPaths)]
		first := turnBody(t, path, model, system, user, "", "")
		second := turnBody(t, path, model, system, user, reply, next)
		h1, h2 := turnHash(t, path, first), turnHash(t, path, second)
		if h1 != h2 {
			t.Fatalf("%s: the second turn changed the hash\n%s\n%s", path, first, second)
		}
		// Distinct valid strings stay distinct through JSON; invalid UTF-8 may not (each
		// bad byte becomes U+FFFD).
		if user != otherUser && utf8.ValidString(user) && utf8.ValidString(otherUser) {
			if h3 := turnHash(t, path, turnBody(t, path, model, system, otherUser, "", "")); h3 == h1 {
				t.Fatalf("%s: first user messages %q and %q give one hash", path, user, otherUser)
			}
		}
	})
}

// turnBody builds a request of path: system text, the first user message and, when reply
// is set, the assistant's reply and the next user message.
func turnBody(t *testing.T, path, model, system, user, reply, next string) []byte {
	t.Helper()
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	var msgs []msg
	if system != "" && path == pathChat {
		msgs = append(msgs, msg{"system", system})
	}
	msgs = append(msgs, msg{"user", user})
	if reply != "" {
		msgs = append(msgs, msg{"assistant", reply}, msg{"user", next})
	}
	v := map[string]interface{}{"model": model}
	switch path {
	case pathResponses:
		v["input"] = msgs
		if system != "" {
			v["instructions"] = system
		}
	case pathMessages:
		v["messages"] = msgs
		if system != "" {
			v["system"] = system
		}
	default:
		v["messages"] = msgs
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func turnHash(t *testing.T, path string, body []byte) string {
	t.Helper()
	info, e := validateBody(path, body)
	if e != nil {
		t.Fatalf("%s refused: %s: %s", path, e.msg, body)
	}
	return sessionHash(path, http.Header{}, &info, "sk-fuzz")
}
