package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// errUpstreamRefused marks a dial refused because the upstream address is loopback,
// link-local, private or unspecified (docs/design.md, "Upstream addresses").
// The attempt fails like a connection failure but with class upstream_refused, which
// does not pause the account (the provider did not fail; the account is misconfigured).
var errUpstreamRefused = errors.New("upstream address is loopback, link-local or private")

// cgnat is the shared address space of RFC 6598 (100.64.0.0/10), which netip does not
// count as private.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// refusedUpstreamAddr reports whether ip is an address an account must not reach:
// unspecified, 0.0.0.0/8, loopback, link-local, private (10/8, 172.16/12, 192.168/16,
// fc00::/7), CGNAT, multicast, in their IPv4-mapped IPv6 forms too.
func refusedUpstreamAddr(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.Unmap()
	if ip.Is4() && ip.As4()[0] == 0 {
		return true // 0.0.0.0/8: "this network", reaches the local host on Linux
	}
	return ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || cgnat.Contains(ip)
}

// guardedDialer returns a DialContext with a connect timeout that, unless allowPrivate,
// resolves the host itself, refuses it with errUpstreamRefused when any of its addresses
// is refused (refusedUpstreamAddr), and dials the checked address literals only, so that
// a second DNS answer cannot route around the check. TLS still verifies the URL's host
// name: http.Transport takes the server name from the request, not from the dialled
// address.
//
// A net.Dialer Control func would see the address being dialled too, but its type
// names syscall.RawConn and Traefik loads Yaegi's syscall symbols only for plugins that
// need useUnsafe (docs/yaegi.md).
func guardedDialer(timeout time.Duration, allowPrivate bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if allowPrivate {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, dialFailed(err) // classify.go
			}
			return c, nil
		}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		// The connect timeout covers resolution and every address, as net.Dialer's does.
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ips, port, err := checkedUpstreamAddrs(ctx, addr)
		if err != nil {
			if errors.Is(err, errUpstreamRefused) {
				return nil, err
			}
			return nil, dialFailed(err) // classify.go
		}
		var last error
		for _, ip := range ips {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			last = err
			if ctx.Err() != nil {
				break
			}
		}
		return nil, dialFailed(last)
	}
}

// checkedUpstreamAddrs resolves addr's host (a literal is taken as is) and returns its
// addresses, or an error wrapping errUpstreamRefused when one of them is refused. The
// wrapping is compiled (fmt, net.OpError): errors.Is then works under Yaegi as well.
func checkedUpstreamAddrs(ctx context.Context, addr string) ([]netip.Addr, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	var ips []netip.Addr
	if ip, perr := netip.ParseAddr(host); perr == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, "", &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
	}
	if len(ips) == 0 {
		return nil, "", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no address for " + host)}
	}
	for _, ip := range ips {
		if refusedUpstreamAddr(ip) {
			return nil, "", &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("%w: %s is %s", errUpstreamRefused, host, ip)}
		}
	}
	return ips, port, nil
}

// classUpstreamRefused is the error class of an attempt whose dial the guard refused.
// controlsvc does not mark the account for it (only transport does): it is excluded for
// the request, and the client gets 502 "Upstream request failed" when none is left.
const classUpstreamRefused = "upstream_refused"

// transportClass is the error class of an attempt that got no response: dial when
// nothing was sent (classify.go), else transport.
func transportClass(err error) string {
	if errors.Is(err, errUpstreamRefused) {
		return classUpstreamRefused
	}
	if isDialFailure(err) {
		return classDial
	}
	return classTransport
}
