#!/usr/bin/env bash
# ensure-deps.sh installs the system packages the test tooling and `make run`
# need: redis-server and the PostgreSQL 15 server binaries. It is idempotent:
# when everything is present it only checks and exits.
set -euo pipefail

PG_BIN_DIR="${POOLGATE_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"

log() { printf 'ensure-deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	fi
fi

updated=0
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		log "apt-get not found; install these packages by hand: $*"
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Try without refreshing the package lists first: it is much faster and
	# works on images whose lists are still current.
	if $SUDO apt-get install -y --no-install-recommends "$@"; then
		return 0
	fi
	if [ "$updated" -eq 0 ]; then
		log "install failed; running apt-get update and retrying"
		$SUDO apt-get update
		updated=1
	fi
	$SUDO apt-get install -y --no-install-recommends "$@"
}

if command -v redis-server >/dev/null 2>&1; then
	log "redis-server present: $(command -v redis-server)"
else
	log "redis-server missing; installing"
	apt_install redis-server
	# Debian starts a system redis on 6379 after install; tests start their
	# own servers on free ports, so the system one is harmless but unneeded.
fi

missing=0
for b in initdb pg_ctl postgres; do
	if [ ! -x "$PG_BIN_DIR/$b" ]; then
		missing=1
	fi
done
if [ "$missing" -eq 0 ]; then
	log "PostgreSQL binaries present in $PG_BIN_DIR"
else
	log "PostgreSQL 15 binaries missing in $PG_BIN_DIR; installing postgresql-15"
	apt_install postgresql-15
	for b in initdb pg_ctl postgres; do
		if [ ! -x "$PG_BIN_DIR/$b" ]; then
			log "still missing $PG_BIN_DIR/$b after installing postgresql-15"
			exit 1
		fi
	done
fi
log "ok"
