# mktos2s — see README.md. Everything runs offline once the Go module cache
# holds the dependencies; the Temporal CLI is built from source, never downloaded.

# The Temporal CLI pinned for the dev server (server 1.29.1, UI 2.42.1).
# v1.9.1 does not install from the module proxy; see DESIGN.md.
TEMPORAL_CLI_VERSION := v1.5.1
TEMPORAL_CLI_MODULE  := github.com/temporalio/cli/cmd/temporal

# The Temporal server of the same release, its SQL schema tool and the
# standalone UI server the CLI embeds, for `make stack`; `make test-cluster` needs all but the UI.
TEMPORAL_SERVER_VERSION := v1.29.1
TEMPORAL_UI_VERSION     := v2.42.1

BIN      := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
GO       ?= go

# Integration tests find the CLI through this variable (internal/devserver.Locate).
export MKTOS2S_TEMPORAL_BIN := $(TEMPORAL)

.PHONY: all test test-browser build temporal emulator demo bench bench-scale lint clean demo-session

all: build

## test: vet and run every unit and integration test (builds the Temporal CLI if missing)
test: $(TEMPORAL)
	$(GO) vet ./...
	$(GO) test ./... -count=1 -timeout 20m

## fuzz: every Go fuzz target for FUZZTIME each (default 10000x executions; a duration such as 60s works too), printing the executions per target (.ci/fuzz)
FUZZTIME ?= 10000x
.PHONY: fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash .ci/fuzz

## build: bin/worker and bin/starter (production: no emulator, no dev server) and bin/devstack (the local stack)
build:
	$(GO) build -o $(BIN)/worker ./worker
	$(GO) build -o $(BIN)/starter ./starter
	$(GO) build -o $(BIN)/devstack ./devstack

## temporal: the pinned Temporal CLI in bin/ (a cold build takes minutes)
temporal: $(TEMPORAL)

# A go install, not a go.mod tool line: the CLI's dependencies stay out of
# the product's go.mod.
$(TEMPORAL):
	GOBIN=$(BIN) $(GO) install $(TEMPORAL_CLI_MODULE)@$(TEMPORAL_CLI_VERSION)

SERVER   := $(BIN)/server
SQLTOOL  := $(BIN)/sql
UISERVER := $(BIN)/ui/server
# The server module's PostgreSQL schemas (downloaded with the server).
SCHEMA_DIR = $(shell $(GO) mod download -json go.temporal.io/server@$(TEMPORAL_SERVER_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/schema/postgresql/v12

$(SERVER):
	GOBIN=$(BIN) $(GO) install go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VERSION)
$(SQLTOOL):
	GOBIN=$(BIN) $(GO) install go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)
$(UISERVER):
	GOBIN=$(BIN)/ui $(GO) install github.com/temporalio/ui-server/v2/cmd/server@$(TEMPORAL_UI_VERSION)

## cluster-bins: the Temporal server, SQL tool and UI server in bin/ (a cold build takes minutes)
cluster-bins: $(TEMPORAL) $(SERVER) $(SQLTOOL) $(UISERVER)

## stack: PostgreSQL 15, a two-node Temporal cluster, two workers, codec endpoint, consent callback, UI and the emulator (Ctrl-C stops; again = same data)
stack: build cluster-bins
	$(BIN)/devstack stack --bin $(BIN) --dir .data/stack --schema-dir $(SCHEMA_DIR) $(STACK_FLAGS)

## emulator: the local Microsoft emulator (Entra, Graph, Dataverse) on https://127.0.0.1:8443
emulator:
	$(GO) run ./devstack emulator

## demo: dev server + UI + emulator + worker, onboard the demo tenant (Ctrl-C to stop; CI=true exits at the end)
demo: $(TEMPORAL)
	$(GO) run ./devstack --config config/mktos2s.emulator.yaml demo $(if $(CI),--exit)

## demo-session: the customer-admin session mode end to end (Northwind: no prior consent, no application user; one browser session)
demo-session: $(TEMPORAL)
	$(GO) run ./devstack --config config/mktos2s.emulator.yaml demo --admin-session $(if $(CI),--exit)

## test-browser: the Temporal UI in headless Chromium (Debian's chromium at /usr/bin/chromium; never downloaded): README "Secret custody"
test-browser: $(TEMPORAL)
	$(GO) vet -tags browser ./browser
	$(GO) test -tags browser ./browser -count=1 -v -timeout 10m

## bench: onboarding throughput, history events and Temporal Cloud actions against a bare Temporal chain, and what `start --wait` costs (README "Performance"; report in bench/out/)
# Flags of ./bench, e.g. make bench BENCH_FLAGS="-n 50".
BENCH_FLAGS ?=
bench: $(TEMPORAL)
	$(GO) run ./bench $(BENCH_FLAGS)

## bench-scale: 10,000 onboardings started, left waiting for consent, then all drained (at most 45 minutes; report in bench/out-scale/)
SCALE_FLAGS ?= -scale 10000
bench-scale: $(TEMPORAL)
	$(GO) run ./bench -scale-only -timeout 45m -out bench/out-scale $(SCALE_FLAGS)

## chaos: 20 onboardings under 5xx/429/lag with worker SIGKILLs and a dev server restart; checks the state and scans for leaked secrets
.PHONY: chaos
chaos: $(TEMPORAL)
	$(GO) run ./chaos $(CHAOS_FLAGS)

## test-cluster: make chaos's 20 onboardings on the production-shaped stack (PostgreSQL 15, two server nodes, two workers) with a worker kill, a node SIGKILL, a PostgreSQL restart and a full stop and start; state, pg_dump leak scan, metrics (README "Production")
.PHONY: test-cluster
test-cluster: $(TEMPORAL) $(SERVER) $(SQLTOOL)
	$(GO) run ./chaos -cluster -bin $(BIN) -schema-dir $(SCHEMA_DIR) $(CHAOS_FLAGS)

## lint: gofmt must have nothing to say, and go vet must pass
lint:
	@files="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$files" ]; then echo "gofmt -l reports:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...

## clean: remove built binaries (keeps bin/temporal, which is slow to rebuild)
clean:
	rm -f $(BIN)/worker $(BIN)/starter $(BIN)/devstack
