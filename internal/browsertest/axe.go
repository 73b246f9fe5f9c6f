package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// EnvAxe names axe-core's axe.min.js instead of the copy .ci/run installs
// from the npm registry (npm install --prefix build/axe axe-core@4.11.1).
const EnvAxe = "AXE_CORE"

// axeInRepo is where that copy lives, under the module root.
const axeInRepo = "build/axe/node_modules/axe-core/axe.min.js"

// WCAG21AA are the axe-core rule tags of WCAG 2.0 and 2.1, levels A and AA.
var WCAG21AA = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}

// Violation is one failed axe-core rule and the elements that fail it.
type Violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, ", "))
}

// axeScript finds axe-core: $AXE_CORE, else the repository's build copy.
// Without it the test is skipped, saying how to install it.
func axeScript(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvAxe)
	if path == "" {
		dir, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for ; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				path = filepath.Join(dir, axeInRepo)
				break
			}
			if filepath.Dir(dir) == dir {
				t.Fatal("browsertest: no go.mod above the test's directory")
			}
		}
	}
	b, err := os.ReadFile(path) //nolint:gosec // G304: the test names the file: $AXE_CORE or the build copy
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("axe-core not found at %s: npm install --prefix build/axe axe-core@4.11.1 (as .ci/run does), or set %s", path, EnvAxe)
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Axe runs axe-core on the page of ctx for the given rule tags (WCAG21AA
// when none) and returns its violations. The script is injected through
// the DevTools protocol, which the pages' Content-Security-Policy does not
// govern, so the pages need no exception for it.
func Axe(t testing.TB, ctx context.Context, tags ...string) []Violation {
	t.Helper()
	if len(tags) == 0 {
		tags = WCAG21AA
	}
	script := axeScript(t)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](script+";0")); err != nil {
		t.Fatalf("injecting axe-core: %v", err)
	}
	list, _ := json.Marshal(tags)
	run := `axe.run(document, {runOnly: {type: "tag", values: ` + string(list) + `}, resultTypes: ["violations"]})
	  .then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help,
	    nodes: v.nodes.map(n => n.target.join(" "))}))))`
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running axe-core: %v", err)
	}
	var vs []Violation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("axe-core's answer: %v", err)
	}
	return vs
}

// NoViolations fails the test for every WCAG 2.1 A/AA violation axe-core
// finds on the page of ctx; page names it in the messages.
func NoViolations(t testing.TB, ctx context.Context, page string) {
	t.Helper()
	for _, v := range Axe(t, ctx) {
		t.Errorf("%s: accessibility: %s", page, v)
	}
}
