package jit

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Every deployed function runs every package's initialisation at start
// (docs/architecture.md §8), so init() only registers and package-level
// work waits for its first use (issue 14: templates, regular expressions,
// the JSON Schema metaschemas). This test binary links the same packages
// as a deployed function; re-run with GODEBUG=inittrace=1, it reports
// what each package's initialisation allocated. The module's own packages
// together may allocate 64 KiB (33 KB when this was written, against
// 1 MB before) and no package of any module 1 MiB, but for the known
// dependencies listed in heavyInit.
// heavyInit are the dependencies whose own initialisation is known to
// allocate more than 1 MiB, and why they are kept (docs/performance.md).
// None now: the last one, github.com/santhosh-tekuri/jsonschema/v6 (1.7
// MB and about 5 ms per start compiling every draft's metaschemas), gave
// way to internal/jsonschema and is linked by tests of internal/events
// only (TestDeployedCodeLinksNoSchemaLibrary).
var heavyInit = map[string]string{}

func TestInitAllocatesLittle(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	// Not named *.test: lazyregexp compiles at once in test binaries, to
	// find a bad pattern in the tests; a deployed function is not one.
	cmd.Args[0] = "function"
	cmd.Env = append(cleanEnv(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	type pkgInit struct {
		pkg   string
		bytes int
	}
	var inits []pkgInit
	for line := range strings.Lines(string(out)) {
		// init PKG @T ms, C ms clock, N bytes, A allocs
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		n, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", line, err)
		}
		inits = append(inits, pkgInit{f[1], n})
	}
	if len(inits) < 100 {
		t.Fatalf("only %d packages traced:\n%s", len(inits), out)
	}
	slices.SortFunc(inits, func(a, b pkgInit) int { return b.bytes - a.bytes })
	own, ownTotal := []string{}, 0
	for _, i := range inits {
		if i.pkg == "github.com/jitpipeline/jit" || strings.HasPrefix(i.pkg, "github.com/jitpipeline/jit/") {
			ownTotal += i.bytes
			own = append(own, fmt.Sprintf("%s %d B", i.pkg, i.bytes))
		}
		if _, known := heavyInit[i.pkg]; i.bytes > 1<<20 && !known {
			t.Errorf("initialising %s allocates %d bytes at every function's start", i.pkg, i.bytes)
		}
	}
	if ownTotal > 64<<10 {
		t.Errorf("the module's packages allocate %d bytes at init, want at most 64 KiB; largest first:\n%s", ownTotal, strings.Join(own, "\n"))
	}
}
