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
