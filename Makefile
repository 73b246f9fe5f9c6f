# The README says what each target is for.
GO        ?= go
PKGS      ?= ./...
DATA_DIR  ?= .jit
PORT      ?= 8080
TESTFLAGS ?= -race -shuffle=on -count=1 -timeout=15m

.PHONY: all build test test-short bench vet lint fmt fmt-check run clean source

all: vet test

build:
	$(GO) build ./...

# go test -json through internal/tools/testsummary: the usual compact output,
# then one "skipped: …" summary; it exits 1 when any package or test fails.
test:
	@$(GO) build -o $${TMPDIR:-/tmp}/jit-testsummary ./internal/tools/testsummary
	@$(GO) test -json $(TESTFLAGS) $(PKGS) | $${TMPDIR:-/tmp}/jit-testsummary

# Skips the slow tests (subprocess restarts, emulators).
test-short:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

bench:
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

clean:
	rm -rf $(DATA_DIR)
