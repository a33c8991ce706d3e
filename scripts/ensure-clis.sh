#!/usr/bin/env bash
# ensure-clis.sh installs Codex CLI and Claude Code at the versions pinned in
# scripts/clis.env from npm into a cache outside the checkout,
# $POOLGATE_CLI_CACHE (default $HOME/.cache/poolgate/clis)/<package>@<version>,
# once per machine: a complete install is only checked. It prints nothing on
# stdout; e2e/clis finds the binaries by the same layout.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=clis.env
source scripts/clis.env

CACHE="${POOLGATE_CLI_CACHE:-$HOME/.cache/poolgate/clis}"
log() { printf 'ensure-clis: %s\n' "$*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
	# A fresh Debian machine (.ci/run): the distribution's Node.js runs both CLIs' launchers.
	if command -v apt-get >/dev/null 2>&1; then
		log "npm missing; installing nodejs and npm"
		SUDO=""
		if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
		export DEBIAN_FRONTEND=noninteractive
		$SUDO apt-get install -y --no-install-recommends nodejs npm ||
			{ $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends nodejs npm; }
	fi
	if ! command -v npm >/dev/null 2>&1; then
		log "npm not found; install Node.js 20 or newer with npm"
		exit 1
	fi
fi

# install <package> <version> <binary path inside the prefix that proves the install>
install() {
	local pkg="$1" ver="$2" probe="$3"
	local dir="$CACHE/$pkg@$ver"
	if [ -f "$dir/.complete" ] && [ -x "$dir/$probe" ]; then
		log "$pkg@$ver present in $dir"
		return 0
	fi
	log "installing $pkg@$ver into $dir"
	# Into a fresh directory renamed at the end, so an interrupted install is never taken
	# for a complete one.
	local tmp="$dir.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	# --include=optional: the native binaries come as optional dependencies.
	npm install --prefix "$tmp" --no-audit --no-fund --no-save --include=optional \
		--loglevel=error "$pkg@$ver" >&2
	if [ ! -x "$tmp/$probe" ]; then
		log "$pkg@$ver: $probe missing after npm install"
		exit 1
	fi
	# The native binary of this platform comes as an optional dependency that npm skips
	# silently when it cannot install it: run it once, with a throwaway HOME.
	local home
	home="$(mktemp -d)"
	if ! HOME="$home" "$tmp/$probe" --version >&2; then
		rm -rf "$home"
		log "$pkg@$ver: $probe --version failed (is the native package for $(uname -m) missing?)"
		exit 1
	fi
	rm -rf "$home"
	touch "$tmp/.complete"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

install "$CODEX_PACKAGE" "$CODEX_VERSION" node_modules/.bin/codex
install "$CLAUDE_CODE_PACKAGE" "$CLAUDE_CODE_VERSION" node_modules/.bin/claude
log "ok"
