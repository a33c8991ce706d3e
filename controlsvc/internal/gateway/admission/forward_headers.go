package admission

import "strings"

// What a grant tells the plugin to send upstream besides the client headers its allowlist
// forwards (docs/design.md, "Forwarded headers"): the account's credential, the
// account's fixed headers, and the group's beta allowlist and User-Agent (wire.Grant). The
// plugin holds the default beta lists, so a group without its own list adds nothing to the
// reply.

// grantHeaders are the headers the plugin sets on the upstream request after the forwarded
// client headers: the account's fixed headers and its credential. The admin API keeps fixed
// headers off the names the credential headers use; a stored one that names them anyway is
// left out, so that the credential is never replaced.
func grantHeaders(platform, apiKey string, fixed map[string]string) map[string]string {
	h := upstreamHeaders(platform, apiKey)
	if len(fixed) == 0 {
		return h
	}
	for k, v := range fixed {
		if !namesAny(h, k) {
			h[k] = v
		}
	}
	return h
}

// namesAny reports whether h has a key equal to name but for case.
func namesAny(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}
