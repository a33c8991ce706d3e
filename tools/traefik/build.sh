#!/usr/bin/env bash
# Builds Traefik from its Go module into bin/traefik (see traefik-yaegi-lab §1 in the team notes).
#
# `go install github.com/traefik/traefik/v3/cmd/traefik@v3.7.13` is refused because Traefik's
# go.mod has replace directives, so Traefik is built as a dependency of this module, whose
# go.mod repeats those directives. Three obstacles on machines behind the Go module proxy are
# worked around:
#  1. Traefik replaces github.com/traefik/traefik/dynamic/ext with a directory that its
#     module zip lacks: ./ext is a stub module with the types Traefik embeds.
#  2. The proxy refuses the containous go-http-auth fork at the pseudo-version Traefik pins
#     (go.mod replaces it with an older, API-compatible one) and the SDK modules of 13 lego
#     DNS providers: lego is copied from the module cache into ./lego (not committed) with
#     those providers unregistered, and go.mod replaces lego with that copy. Only those
#     ACME DNS-challenge providers are missing from the binary.
#  3. The module zip has no built web UI: run with api.dashboard false.
set -euo pipefail

TRAEFIK_VERSION=v3.7.13
LEGO_VERSION=v5.4.1
BLOCKED_PROVIDERS="alidns aliesa azion dnsimple edgedns edgeone huaweicloud oraclecloud regfish sakuracloud tencentcloud ucloud yandexcloud"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/bin/traefik}
cd "$here"

if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "$TRAEFIK_VERSION"; then
	echo "traefik $TRAEFIK_VERSION already built at $out"
	exit 0
fi

if [ ! -f lego/.poolgate-patched ]; then
	echo "preparing patched lego $LEGO_VERSION copy"
	GOFLAGS=-mod=mod go mod download "github.com/go-acme/lego/v5@$LEGO_VERSION"
	src=$(go env GOMODCACHE)/github.com/go-acme/lego/v5@$LEGO_VERSION
	rm -rf lego.tmp && cp -r "$src" lego.tmp && chmod -R u+w lego.tmp
	gen=lego.tmp/providers/dns/zz_gen_dns_providers.go
	alt=$(echo "$BLOCKED_PROVIDERS" | sed 's/ /\\|/g')
	# drop the imports, then each `case "...":` line together with its `return p.NewDNSProvider()`
	sed -i "/\"github.com\/go-acme\/lego\/v5\/providers\/dns\/\($alt\)\"$/d" "$gen"
	sed -i "/^\tcase .*:$/{N;/\n\t\treturn \($alt\)\.NewDNSProvider()$/d}" "$gen"
	for p in $BLOCKED_PROVIDERS; do
		if grep -q "providers/dns/$p\"\|return $p\." "$gen"; then
			echo "build.sh: could not unregister lego provider $p" >&2
			exit 1
		fi
	done
	touch lego.tmp/.poolgate-patched
	rm -rf lego && mv lego.tmp lego
fi

echo "building traefik $TRAEFIK_VERSION (cold: ~14 min; warm: seconds)"
mkdir -p "$(dirname "$out")"
go build -mod=mod -trimpath \
	-ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
	-o "$out" github.com/traefik/traefik/v3/cmd/traefik
"$out" version
