package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// A self-approved entitlement: listed, requested with --wait until ACTIVE,
// listed among the requester's grants, withdrawn; a refusal exits 1 and
// names the field.
func TestCLISelfApproved(t *testing.T) {
	t.Parallel()
	url := startPipeline(t)
	alice := []string{"--api", url, "--as", "alice@example.com"}

	r := mustJit(t, append([]string{"entitlements"}, alice...)...)
	if !strings.Contains(r.stdout, "demo.demo-project.viewer") || !strings.Contains(r.stdout, "self") {
		t.Errorf("jit entitlements: want demo.demo-project.viewer, self-approved:\n%s", r.stdout)
	}

	r = mustJit(t, append([]string{"request", "demo.demo-project.viewer", "--duration", "PT5M", "--justification", "checking the dashboards", "--wait"}, alice...)...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if last := strings.Fields(lines[len(lines)-1]); len(last) < 2 || last[1] != "ACTIVE" {
		t.Errorf("jit request --wait: last line %q, want the grant ACTIVE\nstdout:\n%s\nstderr:\n%s", last, r.stdout, r.stderr)
	}
	first := strings.Fields(lines[len(lines)-1])[0]

	r = jit(t, append([]string{"request", "demo.demo-project.viewer", "--duration", "PT5M"}, alice...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "justification") || !strings.HasPrefix(r.stderr, "jit: ") {
		t.Errorf("request without a justification: exit %d, stderr %q; want exit 1 naming the field", r.code, r.stderr)
	}

	second := grantJSON(t, append([]string{"request", "demo.demo-project.viewer", "--duration", "PT1H", "--justification", "a longer look", "--wait"}, alice...)...)
	if second.State != "ACTIVE" {
		t.Fatalf("second grant: %s, want ACTIVE", second.State)
	}
	r = mustJit(t, append([]string{"withdraw", second.ID}, alice...)...)
	if !strings.Contains(r.stdout, "WITHDRAW") {
		t.Errorf("jit withdraw: want the grant WITHDRAWING or WITHDRAWN:\n%s", r.stdout)
	}

	r = mustJit(t, append([]string{"grants", "--format=json"}, alice...)...)
	var gs grantsView
	if err := json.Unmarshal([]byte(r.stdout), &gs); err != nil {
		t.Fatalf("jit grants --format=json: %v\n%s", err, r.stdout)
	}
	var ids []string
	for _, g := range gs.Grants {
		if g.Requester != "alice@example.com" {
			t.Errorf("grant %s of %s among alice's", g.ID, g.Requester)
		}
		ids = append(ids, g.ID)
	}
	for _, id := range []string{first, second.ID} {
		if !slices.Contains(ids, id) {
			t.Errorf("jit grants: %s missing from %v", id, ids)
		}
	}

	r = mustJit(t, append([]string{"grant", second.ID}, alice...)...)
	for _, want := range []string{second.ID, "demo.demo-project.viewer", "EVENT", "ACTIVE", "a longer look"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("jit grant: want %q in\n%s", want, r.stdout)
		}
	}
}

// An entitlement that needs an approval: carol approves one request and
// denies another, which ends bob's --wait with exit 3.
func TestCLIApproval(t *testing.T) {
	t.Parallel()
	url := startPipeline(t)
	bob := []string{"--api", url, "--as", "bob@example.com"}
	carol := []string{"--api", url, "--as", "carol@example.com"}

	g := grantJSON(t, append([]string{"request", "demo.demo-project.admin", "--duration", "PT1H", "--justification", "resize the pool"}, bob...)...)
	if g.State != "APPROVAL_AWAITED" {
		t.Fatalf("request: %s, want APPROVAL_AWAITED", g.State)
	}
	r := mustJit(t, append([]string{"approvals"}, carol...)...)
	if !strings.Contains(r.stdout, g.ID) {
		t.Errorf("carol's approvals: want %s in\n%s", g.ID, r.stdout)
	}
	mustJit(t, append([]string{"approve", g.ID, "--reason", "ok"}, carol...)...)
	waitState(t, url, "bob@example.com", g.ID, "ACTIVE")

	// bob waits in one process; carol denies from another.
	wait := exec.CommandContext(t.Context(), jitBin, append([]string{"request", "demo.demo-project.admin", "--duration", "PT1H", "--justification", "again", "--wait", "--format=json"}, bob...)...)
	wait.Env = cliEnv()
	var wout, werr bytes.Buffer
	wait.Stdout, wait.Stderr = &wout, &werr
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	id := awaitingApproval(t, carol, g.ID)
	r = mustJit(t, append([]string{"deny", id, "--reason", "x"}, carol...)...)
	if !strings.Contains(r.stdout, "DENIED") {
		t.Errorf("jit deny: want DENIED in\n%s", r.stdout)
	}
	wait.Wait() //nolint:errcheck // the exit code is the point
	if code := wait.ProcessState.ExitCode(); code != 3 {
		t.Errorf("request --wait of a denied request: exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, wout.String(), werr.String())
	}
	if !strings.Contains(werr.String(), "DENIED") || !strings.Contains(wout.String(), `"DENIED"`) {
		t.Errorf("request --wait: want DENIED on stderr and in the JSON\nstdout:\n%s\nstderr:\n%s", wout.String(), werr.String())
	}
	if g := grantJSON(t, append([]string{"grant", id}, bob...)...); g.State != "DENIED" || g.Denial == nil || g.Denial.Reason != "x" {
		t.Errorf("denied grant: state %s, denial %+v", g.State, g.Denial)
	}

	r = jit(t, append([]string{"deny", id}, carol...)...)
	if r.code != 2 {
		t.Errorf("deny without --reason: exit %d, want 2", r.code)
	}
}

// awaitingApproval polls carol's approvals for a grant other than skip.
func awaitingApproval(t *testing.T, as []string, skip string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r := mustJit(t, append([]string{"approvals", "--format=json"}, as...)...)
		var gs grantsView
		if err := json.Unmarshal([]byte(r.stdout), &gs); err != nil {
			t.Fatal(err)
		}
		for _, g := range gs.Grants {
			if g.ID != skip {
				return g.ID
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no second request awaits carol's approval")
	return ""
}
