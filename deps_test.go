package jit

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeployedCodeLinksNoEmulator: the package the buildpack deploys must
// not link the embedded Google Cloud (its token minter, fake IAM, …) or the
// local pipeline and its demo world — production code depends on the
// domain and on Google's client libraries only. Everything local lives
// under internal/local (internal/README.md).
func TestDeployedCodeLinksNoEmulator(t *testing.T) {
	t.Parallel()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps gave only %d packages: %s", len(deps), out)
	}
	const local = "github.com/jitpipeline/jit/internal/local"
	for _, d := range deps {
		if d == local || strings.HasPrefix(d, local+"/") {
			t.Errorf("the deployed package links %s", d)
		}
	}
}

// TestDeployedCodeLinksNoSchemaLibrary: the JSON Schema library whose
// init() cost every function 1.7 MB and 5 ms at start (issue 14) is a
// test-only dependency, the reference internal/jsonschema is held to
// (internal/events/conformance_test.go); neither the deployed package nor
// its test binary links it.
func TestDeployedCodeLinksNoSchemaLibrary(t *testing.T) {
	t.Parallel()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-test", "-deps", ".", "./functions/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps gave only %d packages: %s", len(deps), out)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/santhosh-tekuri/jsonschema") {
			t.Errorf("the deployed code, or its tests, link %s", d)
		}
	}
}

// TestLayers: the tree reads functions → domain → adapters, local apart
// (internal/README.md). Each rule names packages and what they must not
// import; go list reports the non-test imports of every package.
func TestLayers(t *testing.T) {
	t.Parallel()
	const mod = "github.com/jitpipeline/jit/"
	out, err := exec.CommandContext(t.Context(), "go", "list", "-f",
		"{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], mod) {
			continue
		}
		var own []string
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod) {
				own = append(own, strings.TrimPrefix(imp, mod))
			}
		}
		imports[strings.TrimPrefix(f[0], mod)] = own
	}
	if len(imports) < 30 {
		t.Fatalf("go list gave only %d packages", len(imports))
	}
	under := func(p string, prefixes ...string) bool {
		for _, x := range prefixes {
			if p == x || strings.HasPrefix(p, x+"/") {
				return true
			}
		}
		return false
	}
	composition := []string{"internal/deploy", "internal/wiring"}
	triggers := []string{"internal/api", "internal/eventfn", "functions"}
	adapters := []string{"internal/iambinding", "internal/ledger", "internal/groups", "internal/auth", "internal/envelope", "internal/policy/source", "internal/approvallink", "internal/mail"}
	leaves := []string{"internal/jsonschema", "internal/lazyregexp", "internal/emailaddr", "internal/iamqueue", "internal/isoduration", "internal/jsonstrict", "internal/usertext", "internal/clock", "internal/logging"}
	rules := []struct {
		name     string
		applies  func(p string) bool
		mustNot  []string
		anything bool // no package of the module at all
	}{
		{"only cmd/jit and local code use internal/local",
			func(p string) bool { return !under(p, "internal/local", "cmd/jit") },
			[]string{"internal/local"}, false},
		{"only the composition uses the composition",
			func(p string) bool {
				return p != "" && !under(p, composition...) && !under(p, "internal/local", "cmd/jit") && p != "."
			},
			composition, false},
		{"adapters use neither the functions nor the lifecycle",
			func(p string) bool { return under(p, adapters...) },
			append([]string{"internal/lifecycle"}, append(triggers, composition...)...), false},
		{"the domain does not know how it is triggered",
			func(p string) bool {
				return under(p, "internal/lifecycle", "internal/grant", "internal/policy", "internal/events", "internal/iamcond", "internal/token") && !under(p, "internal/policy/source")
			},
			append(triggers, composition...), false},
		{"leaves import nothing of the project",
			func(p string) bool { return under(p, leaves...) }, nil, true},
	}
	for _, r := range rules {
		for p, deps := range imports {
			if !r.applies(p) {
				continue
			}
			for _, d := range deps {
				if r.anything || under(d, r.mustNot...) {
					t.Errorf("%s: %s imports %s", r.name, p, d)
				}
			}
		}
	}
}
