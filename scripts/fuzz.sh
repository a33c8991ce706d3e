#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each (docs/security.d/fuzz.md).
# A test binary takes one fuzz target per run, so each package's fuzz-instrumented test
# binary is built once (go test -c -fuzz), its targets listed (-test.list '^Fuzz') and run
# one after the other, from the package directory so that testdata/fuzz/<target>/ is the
# seed corpus, with the corpus cache go test itself uses. Any failure fails the script,
# after all targets ran; the failing input is written to <package>/testdata/fuzz/<target>/
# and reruns with go test -run '<target>/<file>' ./<package>.
#
#   FUZZTIME      time per target (default 3s; make fuzz uses 60s)
#   FUZZ_MATCH    only targets whose name matches this extended regexp (default: all)
#   FUZZ_TIMEOUT  a target still running after this is a hang and fails (default 5m)
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}
FUZZ_MATCH=${FUZZ_MATCH:-.}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-5m}

# Packages with a fuzz target: directories of test files that declare one (this module
# only; tests/yaegi is its own module and runs the plugin interpreted).
mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz[A-Z0-9]' . |
	grep -v '^\./tests/' | xargs -r -n1 dirname | sort -u)
if [ "${#dirs[@]}" -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
cachedir=$($GO env GOCACHE)/fuzz
root=$PWD

start=$SECONDS
failed=()
count=0
for dir in "${dirs[@]}"; do
	pkg=$($GO list "$dir") || { failed+=("$dir (go list)"); continue; }
	bin=$bindir/$(echo "$pkg" | tr '/' '_').test
	if ! $GO test -c -fuzz=. -o "$bin" "$dir"; then
		failed+=("$dir (build)")
		continue
	fi
	if ! names=$(cd "$dir" && "$bin" -test.run='^$' -test.list='^Fuzz' | grep '^Fuzz'); then
		failed+=("$dir (list)")
		continue
	fi
	for name in $names; do
		[[ $name =~ $FUZZ_MATCH ]] || continue
		count=$((count + 1))
		t0=$SECONDS
		ok=0
		for try in 1 2; do
			if out=$(cd "$dir" && "$bin" -test.run='^$' -test.fuzz="^${name}\$" -test.fuzztime="$FUZZTIME" \
				-test.fuzzcachedir="$cachedir/$pkg/" -test.timeout="$FUZZ_TIMEOUT" -test.paniconexit0 2>&1); then
				ok=1
				break
			fi
			# Go's fuzzer may end a run at the -fuzztime boundary with "context deadline
			# exceeded" and no failing input (golang/go#51484), more often on a loaded
			# machine. That alone gets one more run; any other failure, or a failing input
			# written, fails at once.
			if [ "$try" = 1 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
				echo "fuzz: $dir $name ended with a bare 'context deadline exceeded' (golang/go#51484); running it again"
				continue
			fi
			break
		done
		if [ "$ok" = 1 ]; then
			echo "fuzz: ok   $dir $name ($((SECONDS - t0))s)"
		else
			echo "$out" | tail -n 40
			echo "fuzz: FAIL $dir $name ($((SECONDS - t0))s): rerun with go test -run '$name/<file>' $dir"
			failed+=("$dir $name")
		fi
	done
done
cd "$root"

echo "fuzz: $count targets, $FUZZTIME each, $((SECONDS - start))s in all"
if [ "${#failed[@]}" -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
