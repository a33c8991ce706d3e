package adminapi

import (
	"net/netip"
	"net/url"
	"strings"
)

// cgnat is the shared address space of RFC 6598, which netip does not count as private.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// refusedUpstreamAddr reports whether an account must not point at ip: unspecified,
// 0.0.0.0/8, loopback, link-local, private (10/8, 172.16/12, 192.168/16, fc00::/7), CGNAT
// or multicast, IPv4-mapped forms included. The plugin's dial guard applies the same rule
// to every resolved address (plugin/dialguard.go).
func refusedUpstreamAddr(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.Unmap()
	if ip.Is4() && ip.As4()[0] == 0 {
		return true
	}
	return ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || cgnat.Contains(ip)
}

// localHostNames resolve to the local host by convention (RFC 6761 §6.3, /etc/hosts).
var localHostNames = map[string]bool{
	"localhost": true, "localhost.localdomain": true, "ip6-localhost": true, "ip6-loopback": true,
}

// checkUpstreamAddress enforces docs/design.md, "Upstream addresses", on a normalised
// base_url: https, and no
// loopback, link-local or private literal address or local host name, unless
// allowPrivate (POOLGATE_ALLOW_PRIVATE_UPSTREAMS), which also allows http. Other names are
// checked where they are resolved, at dial time in the plugin: DNS can change after this.
func checkUpstreamAddress(baseURL string, allowPrivate bool) error {
	if allowPrivate {
		return nil
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return invalid("base_url must be an absolute http or https URL, e.g. https://api.openai.com")
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return invalid("base_url must use https (http is allowed only with POOLGATE_ALLOW_PRIVATE_UPSTREAMS=1)")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if refusedUpstreamAddr(ip) {
			return invalid("base_url host %s is a loopback, link-local or private address (allowed only with POOLGATE_ALLOW_PRIVATE_UPSTREAMS=1)", ip)
		}
		return nil
	}
	if localHostNames[host] || strings.HasSuffix(host, ".localhost") {
		return invalid("base_url host %q is the local host (allowed only with POOLGATE_ALLOW_PRIVATE_UPSTREAMS=1)", host)
	}
	// A numeric last label is no DNS name but an address in a legacy form that resolvers
	// accept (127.1, 0x7f.0.0.1, 2130706433): refused rather than interpreted.
	last := host[strings.LastIndex(host, ".")+1:]
	if last == "" || strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return invalid("base_url host %q is not a DNS name or a standard IP address", host)
	}
	return nil
}
