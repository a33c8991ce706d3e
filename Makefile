# poolgate: `make run` runs the gateway locally, `make test` runs every test tier.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
# FUZZTIME: how long make test runs each fuzz target (make fuzz: 60s).
FUZZTIME ?= 3s

.PHONY: run test test-unit test-yaegi test-yaegi-race test-e2e check-plugin lint bench build traefik deps clis clean

## run: build what is missing, then run PostgreSQL, Redis, controlsvc, a fake upstream and Traefik in the foreground
run: deps build traefik
	$(GO) run ./tools/localrun -bin $(BIN)

## test: every tier — unit and integration (-race, real PostgreSQL and Redis), the plugin under Yaegi, end to end through bin/traefik (e2e/clis: the real Codex CLI and Claude Code)
test: deps build traefik check-plugin clis lint
	$(GO) vet ./...
	POOLGATE_BIN_DIR=$(BIN) $(GO) test -race -count=1 ./...
	cd tests/yaegi && $(GO) vet ./... && $(GO) test -count=1 ./...
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash scripts/fuzz.sh

## fuzz: every fuzz target for FUZZTIME each (default here 60s; make test runs them 3s each); FUZZ_MATCH=<regexp> picks targets
.PHONY: fuzz
fuzz: FUZZTIME = 60s
fuzz:
	FUZZTIME=$(FUZZTIME) FUZZ_MATCH='$(FUZZ_MATCH)' GO=$(GO) bash scripts/fuzz.sh

test-unit: deps
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

test-yaegi: deps
	cd tests/yaegi && $(GO) test -count=1 ./...

## test-yaegi-race: the Yaegi tier under the race detector; it also reports races inside
## Yaegi v0.16.1 itself (docs/yaegi.md, "The race detector and the interpreter"), so it is
## not part of make test
test-yaegi-race: deps
	cd tests/yaegi && $(GO) test -race -count=1 ./...

test-e2e: deps build traefik clis
	POOLGATE_BIN_DIR=$(BIN) $(GO) test -count=1 -v ./e2e/...

## lint: staticcheck (pinned) on both modules; it reports nothing on a clean tree
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) ./...
	cd tests/yaegi && $(GO) run $(STATICCHECK) ./...

## check-plugin: Traefik's Yaegi loads only the standard library, and the plugin has no
## select statement (docs/yaegi.md); both for every package under plugin/ (plugin/convert,
## plugin/wire, ...), which the interpreter loads from the same GOPATH
check-plugin:
	@sel=$$(grep -nE '^[[:space:]]*select[[:space:]]*\{' $$(find plugin -name '*.go' ! -name '*_test.go' ! -path '*/testdata/*') || true); \
	if [ -n "$$sel" ]; then echo "plugin code has select statements (docs/yaegi.md):"; echo "$$sel"; exit 1; fi
	@nonstd=$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./plugin/... | grep -vE '^github.com/poolgate/poolgate/plugin(/[a-z0-9_]+)*$$' || true); \
	if [ -n "$$nonstd" ]; then echo "plugin imports non-standard packages:"; echo "$$nonstd"; exit 1; fi; \
	echo "plugin: standard library only ($$($(GO) list ./plugin/... | tr '\n' ' '))"

## bench: the same load against the fake upstream, Traefik alone and the whole gateway, then a user saturated with queueing on, then long streams relayed and converted (events/s per Traefik core), then the fast path's goals (README.md, "Tests and benchmarks"), PASS or FAIL each, with the breakdown by stage and the plugin's stages timed natively and under Yaegi (BENCH_FLAGS, e.g. "-d 2s -only saturated|convert|goals|stages|streams", "-only streams -streams 2000 -pprof DIR")
bench: deps build traefik
	GO=$(GO) $(GO) run ./bench -bin $(BIN) $(BENCH_FLAGS)

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/controlsvc ./controlsvc/cmd/controlsvc
	$(GO) build -o $(BIN)/fakeupstream ./fakeupstream/cmd/fakeupstream

## traefik: Traefik v3.7.13 from its Go module into bin/traefik (cached; ~14 min cold)
traefik:
	tools/traefik/build.sh $(BIN)/traefik

deps:
	@bash scripts/ensure-deps.sh

## clis: Codex CLI and Claude Code at the versions of scripts/clis.env from npm into $$HOME/.cache/poolgate/clis (POOLGATE_CLI_CACHE; once per machine)
clis:
	@bash scripts/ensure-clis.sh

clean:
	rm -rf $(BIN) tools/traefik/lego
