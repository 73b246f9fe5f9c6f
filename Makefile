# The README says what each target is for.
GO        ?= go
PKGS      ?= ./...
DATA_DIR  ?= .jit
PORT      ?= 8080
TESTFLAGS ?= -race -shuffle=on -count=1 -timeout=15m
# The google provider as a filesystem mirror: the registry is not reachable
# from CI (docs/deploy.md, "Offline checks").
TF_PLUGIN_DIR ?= $(or $(firstword $(wildcard $(abspath ../shared/terraform-providers) /work/shared/terraform-providers)),$(abspath ../shared/terraform-providers))
export TF_PLUGIN_DIR
TERRAFORM ?= terraform

.PHONY: all build test test-short bench bench-all vet lint fmt fmt-check run clean source terraform-check axe

all: vet test

build:
	$(GO) build ./...

# The Terraform module's offline checks, then go test -json through
# internal/tools/testsummary: the usual compact output, then one
# "skipped: …" summary; it exits 1 when any package or test fails.
test: terraform-check axe
	@$(GO) build -o $${TMPDIR:-/tmp}/jit-testsummary ./internal/tools/testsummary
	@$(GO) test -json $(TESTFLAGS) $(PKGS) | $${TMPDIR:-/tmp}/jit-testsummary

# axe-core, from the npm registry, for the browser tests' accessibility
# checks (internal/browsertest/axe.go); fetched once into build/axe.
AXE_VERSION ?= 4.11.1
axe: build/axe/node_modules/axe-core/axe.min.js
build/axe/node_modules/axe-core/axe.min.js:
	@if command -v npm >/dev/null; then npm install --prefix build/axe axe-core@$(AXE_VERSION) --no-audit --no-fund --silent; \
	else echo "npm not found: the accessibility checks will be skipped" >&2; fi

# Skips the slow tests (subprocess restarts, emulators).
test-short:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

# One table of ratios, each against a reference measured in the same run
# (docs/performance.md); BENCH_COUNT runs each, min/median/max. The raw
# output lands in build/bench.txt. bench-all runs every benchmark as is.
BENCH_COUNT ?= 3
bench:
	$(GO) run ./internal/tools/benchtable -count=$(BENCH_COUNT) -raw=build/bench.txt $(PKGS)

bench-all:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

vet:
	$(GO) vet ./...

# Pinned here rather than in go.mod so the linter's dependencies stay out of the module.
lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

# The function source archive terraform uploads (docs/deploy.md): the files
# the deployed root package builds from, byte-identical for the same source.
source:
	$(GO) run ./internal/tools/sourcezip -o build/function-source.zip

run:
	$(GO) run ./cmd/jit local --data-dir=$(DATA_DIR) --port=$(PORT)

# fmt, validate and the least-privilege tests of terraform/ (mock provider),
# offline. internal/deploy's TestTerraformConfiguresEveryFunction plans the
# module too and runs each function's start-up check on its environment.
terraform-check:
	@command -v $(TERRAFORM) >/dev/null || { echo "terraform is required (1.11 or later): the module's checks are part of make test"; exit 1; }
	@test -d $(TF_PLUGIN_DIR) || { echo "no google provider mirror at $(TF_PLUGIN_DIR) (set TF_PLUGIN_DIR)"; exit 1; }
	$(TERRAFORM) -chdir=terraform fmt -check -recursive
	$(TERRAFORM) -chdir=terraform init -backend=false -input=false -plugin-dir=$(TF_PLUGIN_DIR) >/dev/null
	$(TERRAFORM) -chdir=terraform validate -no-color
	$(TERRAFORM) -chdir=terraform test -no-color

clean:
	rm -rf $(DATA_DIR) build
