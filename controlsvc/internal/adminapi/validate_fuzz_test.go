package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the admin API's input checks (scripts/fuzz.sh runs them in make test;
// seed corpora in testdata/fuzz/<target>/). They need no database: TestMain starts
// PostgreSQL only for tests that ask for it.

// fuzzMaxBody is a little over the admin body limit, so the limit itself is exercised.
const fuzzMaxBody = maxBodyBytes + 1024

// checkRefusal fails unless err is a client error in the API's own format: 400 or 413,
// with a message, valid UTF-8 (it is rendered into a JSON body).
func checkRefusal(t *testing.T, what string, err error) {
	t.Helper()
	var re *requestError
	if !errors.As(err, &re) {
		t.Fatalf("%s: error %T %v is not a requestError", what, err, err)
	}
	if re.status != http.StatusBadRequest && re.status != http.StatusRequestEntityTooLarge || re.message == "" || re.typ == "" {
		t.Fatalf("%s: refusal %+v", what, re)
	}
}

// FuzzAdminBody: any body sent to the admin API's create and update endpoints is decoded
// and validated into either a value or a 400/413 in the API's format, never a panic; an
// accepted body is one JSON object (with surrounding white space only); a body over the
// limit is a 413. What the checks accept holds: names trimmed, non-empty and at most
// maxNameLen characters, money non-negative.
func FuzzAdminBody(f *testing.F) {
	f.Add([]byte(`{"name":" acct ","platform":"openai","base_url":"https://api.openai.com/","credential":{"api_key":"sk-x"},"concurrency":3,"model_mapping":{"gpt-*":"gpt-5"}}`), uint8(0))
	f.Add([]byte(`{"name":"r","error_codes":[500,500],"keywords":[" overloaded "],"platforms":["anthropic"],"passthrough_body":false,"custom_message":"busy"}`), uint8(1))
	f.Add([]byte(`{"input":2.5,"output":1e1,"cache_read":0.0000001}`), uint8(2))
	f.Add([]byte(`{"user_id":1,"group_id":2,"quota_usd":null,"expires_at":"2026-01-02T15:04:05+01:00"}`), uint8(3))
	f.Add([]byte(`{"name":"x"} {"name":"y"}`), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, sel uint8) {
		if len(body) > fuzzMaxBody {
			return
		}
		var (
			dst      any
			validate func() error
		)
		switch sel % 5 {
		case 0:
			in := &accountInput{}
			dst = in
			validate = func() error {
				p, err := in.patch(sel&0x80 != 0)
				if err == nil && p.Name != nil {
					checkValidName(t, *p.Name)
				}
				if err == nil && p.BaseURL != nil {
					checkBaseURL(t, *p.BaseURL)
				}
				return err
			}
		case 1:
			in := &ruleInput{}
			dst = in
			validate = func() error {
				r, err := in.rule()
				if err == nil {
					checkValidName(t, r.Name)
					for _, k := range r.Keywords {
						if k == "" || k != strings.TrimSpace(k) {
							t.Fatalf("keyword %q accepted", k)
						}
					}
				}
				return err
			}
		case 2:
			in := &priceInput{}
			dst = in
			validate = func() error {
				p, err := in.toPrice("m")
				if err == nil && (p.InputMicros < 0 || p.OutputMicros < 0 || p.CacheReadMicros < 0 || p.CacheWriteMicros < 0) {
					t.Fatalf("negative price accepted: %+v", p)
				}
				return err
			}
		case 3:
			in := &apiKeyInput{}
			dst = in
			validate = func() error {
				p, err := in.patch()
				if err == nil && p.Quota.Micros != nil && *p.Quota.Micros < 0 {
					t.Fatalf("negative quota accepted")
				}
				return err
			}
		default:
			in := &groupBillingInput{}
			dst = in
			validate = func() error {
				_, err := in.billing()
				return err
			}
		}
		req := httptest.NewRequest(http.MethodPost, "/admin/v1/x", bytes.NewReader(body))
		err := decodeBody(httptest.NewRecorder(), req, dst)
		if len(body) > maxBodyBytes {
			if err != errBodyTooLarge {
				t.Fatalf("body of %d bytes: %v, want 413", len(body), err)
			}
			return
		}
		if err != nil {
			checkRefusal(t, "decode", err)
			return
		}
		if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
			t.Fatalf("decodeBody accepted %q", body)
		}
		if err := validate(); err != nil {
			checkRefusal(t, "validate", err)
		}
	})
}

func checkValidName(t *testing.T, name string) {
	t.Helper()
	if name == "" || name != strings.TrimSpace(name) || utf8.RuneCountInString(name) > maxNameLen {
		t.Fatalf("name %q accepted", name)
	}
}

// checkBaseURL: an accepted base_url is absolute http(s), with a host, without
// credentials, query, fragment or trailing slash; the client path appended to it stays its
// path on the same host; normalising it again changes nothing.
func checkBaseURL(t *testing.T, u string) {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil ||
		p.RawQuery != "" || p.Fragment != "" || strings.HasSuffix(u, "/") {
		t.Fatalf("base_url %q accepted (%v)", u, err)
	}
	// The plugin appends the client path: it must stay the path, on the same host.
	full, err := url.Parse(u + "/v1/responses")
	if err != nil || full.Host != p.Host || full.Fragment != "" || full.RawQuery != "" || full.ForceQuery ||
		!strings.HasSuffix(full.Path, "/v1/responses") {
		t.Fatalf("base_url %q + /v1/responses is %+v (%v)", u, full, err)
	}
	if again, err := normalizeBaseURL(u); err != nil || again != u {
		t.Fatalf("base_url %q normalises again to %q, %v", u, again, err)
	}
}

// FuzzNormalizeBaseURL: normalizeBaseURL accepts only what checkBaseURL holds, and is
// idempotent.
func FuzzNormalizeBaseURL(f *testing.F) {
	for _, s := range []string{"https://api.openai.com/", " http://127.0.0.1:8080/v1// ", "https://u:p@x", "https://x/?a", "https://x#f",
		"mailto:x", "https://[::1", "https://%zz", "HTTPS://X", "https://x/\x00", "https://x\xff/",
		"https://127.1", "https://[::ffff:10.0.0.1]", "https://LOCALHOST.", "https://[fe80::1%25en0]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 8192 {
			return
		}
		u, err := normalizeBaseURL(raw)
		if err != nil {
			checkRefusal(t, "base_url", err)
			return
		}
		checkBaseURL(t, u)
		// With POOLGATE_ALLOW_PRIVATE_UPSTREAMS off: refused in the API's
		// format, or https to a host that is no refused literal address.
		if err := checkUpstreamAddress(u, false); err != nil {
			checkRefusal(t, "base_url address", err)
			return
		}
		p, _ := url.Parse(u)
		if !strings.EqualFold(p.Scheme, "https") {
			t.Fatalf("base_url %q accepted without https", u)
		}
		if ip, err := netip.ParseAddr(p.Hostname()); err == nil && refusedUpstreamAddr(ip) {
			t.Fatalf("base_url %q accepted with a private address", u)
		}
	})
}

// FuzzAdminMoney: a money field is refused or accepted as a non-negative amount; the rate
// multiplier is below its maximum and its text parses back to the same micros.
func FuzzAdminMoney(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-1", "1e30", "1e31", "0.0000001", `"1"`, "null", "999999.999999", "1000000", "1e-7"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 4096 {
			return
		}
		if v, err := parseUSD("f", raw); err != nil {
			checkRefusal(t, "usd", err)
		} else if v < 0 {
			t.Fatalf("parseUSD(%q) = %d", raw, v)
		}
		rate, err := parseRateMultiplier(raw)
		if err != nil {
			checkRefusal(t, "rate", err)
			return
		}
		v, err := parseMicros([]byte(rate))
		if err != nil || v < 0 || v >= maxRateMultiplier {
			t.Fatalf("rate %q from %q: %d, %v", rate, raw, v, err)
		}
		if orig, _ := parseMicros(raw); orig != v {
			t.Fatalf("rate %q from %q: %d micros, input has %d", rate, raw, v, orig)
		}
	})
}

// FuzzAdminQuery: query parameters and timestamps are refused in the API's format or read
// as what they say: ids positive, timestamps that format back to an equal instant.
func FuzzAdminQuery(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "9223372036854775808", "2026-01-02T15:04:05Z", "2026-01-02T15:04:05 01:00", "2026-13-02T15:04:05Z", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 4096 {
			return
		}
		q := url.Values{"v": {raw}}
		if id, err := queryID(q, "v"); err != nil {
			checkRefusal(t, "id", err)
		} else if id < 0 || raw != "" && id == 0 {
			t.Fatalf("queryID(%q) = %d", raw, id)
		}
		if _, err := queryTime(q, "v"); err != nil {
			checkRefusal(t, "time", err)
		}
		js, _ := json.Marshal(raw)
		ts, err := parseTimestamp("v", js)
		if err != nil {
			checkRefusal(t, "timestamp", err)
			return
		}
		back, err := parseTimestamp("v", []byte(`"`+ts.Format("2006-01-02T15:04:05.999999999Z07:00")+`"`))
		if err != nil || !back.Equal(ts) {
			t.Fatalf("timestamp %q → %v → %v, %v", raw, ts, back, err)
		}
	})
}

// FuzzModelMapping: an accepted model_mapping has non-blank keys and values of bounded
// length, a * only at the end of a key and none in a value.
func FuzzModelMapping(f *testing.F) {
	f.Add([]byte(`{"gpt-*":"gpt-5","claude":"claude-sonnet"}`))
	f.Add([]byte(`{"*":"x","a*b":"c"," ":"x","x":"*"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m map[string]string
		if len(raw) > 1<<16 || json.Unmarshal(raw, &m) != nil {
			return
		}
		if err := checkModelMapping(m); err != nil {
			checkRefusal(t, "model_mapping", err)
			return
		}
		for from, to := range m {
			if strings.TrimSpace(from) == "" || strings.TrimSpace(to) == "" || strings.Contains(strings.TrimSuffix(from, "*"), "*") ||
				strings.Contains(to, "*") || len(from) > maxModelNameLen || len(to) > maxModelNameLen {
				t.Fatalf("mapping %q → %q accepted", from, to)
			}
		}
	})
}
