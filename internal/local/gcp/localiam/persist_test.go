package localiam_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/google/go-cmp/cmp"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
	"google.golang.org/protobuf/testing/protocmp"
)

// Policies, etags and the hierarchy persist under Dir: a new Server on the
// same Dir serves the same policies (docs/architecture.md §7: a restart loses nothing).
func TestPersistence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, localiam.Config{Dir: dir})
	written := map[string]*iampb.Policy{}
	for _, res := range []string{project, subfolder, org} {
		c := e.client(t, res, "")
		written[res] = set(t, c, res, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
			binding("roles/browser", "user:a@example.com"),
			condBinding("roles/iam.securityReviewer", jitCondition(t0, t0.Add(time.Hour)), "user:b@example.com"),
		}})
	}

	// The data directory is one server's at a time.
	if _, err := localiam.New(localiam.Config{Dir: dir}); err == nil {
		t.Error("a second server on an open Dir: no error")
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := localiam.New(localiam.Config{Dir: dir, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatalf("New on the same Dir: %v", err)
	}
	t.Cleanup(func() { _ = again.Close() })
	for res, want := range written {
		if diff := cmp.Diff(want, again.Policy(res), protocmp.Transform()); diff != "" {
			t.Errorf("%s after restart (-want, +got):\n%s", res, diff)
		}
	}
	if diff := cmp.Diff(written[project], again.Policy(projectN), protocmp.Transform()); diff != "" {
		t.Errorf("projects/NUMBER after restart (-want, +got):\n%s", diff)
	}
	// The hierarchy survived too: inheritance still works and re-seeding
	// the same world is a no-op.
	seedWorld(t, again)
	if ok, err := again.HasRole(t.Context(), "user:a@example.com", "roles/browser", project, t0); err != nil || !ok {
		t.Errorf("HasRole after restart = %v, %v; want true", ok, err)
	}
	if ok, err := again.HasRole(t.Context(), "user:a@example.com", "roles/browser", "projects/proj-solo", t0); err != nil || ok {
		t.Errorf("HasRole on an unrelated project = %v, %v; want false", ok, err)
	}
	if err := again.AddProject("proj-alpha", 1002, subfolder); err == nil {
		t.Error("re-adding a project with another number: no error")
	}
}

// Config.Validate reports a Dir that is a file.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := localiam.New(localiam.Config{Dir: f}); err == nil {
		t.Error("New with a file as Dir: no error")
	}
}

const helperEnv = "LOCALIAM_HELPER_DIR"

// TestHelperProcess is the child of TestKillAndRestart: it serves the
// test world from the data directory until killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestKillAndRestart")
	}
	srv, err := localiam.New(localiam.Config{Dir: dir})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	seedWorld(t, srv)
	g, err := loopback.ServeGRPC("127.0.0.1:0", srv.Register)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", g.Addr)
	select {} // until SIGKILL
}

func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			return cmd, addr
		}
		if strings.HasPrefix(sc.Text(), "ERROR") {
			t.Fatalf("child: %s", sc.Text())
		}
	}
	t.Fatalf("child exited without an address: %v", sc.Err())
	return nil, ""
}

// A kill -9 right after SetIamPolicy returns loses nothing (docs/architecture.md §7).
func TestKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped in -short mode")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd, addr := startChild(t, dir)
	e := &env{addr: addr}
	written := map[string]*iampb.Policy{}
	for i, res := range []string{project, folder, org, project} {
		c := e.client(t, res, "")
		written[res] = set(t, c, res, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
			condBinding("roles/compute.admin", jitCondition(t0, t0.Add(time.Duration(i+1)*time.Hour)), "user:a@example.com"),
		}})
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	_ = cmd.Wait()

	_, addr = startChild(t, dir)
	e = &env{addr: addr}
	for res, want := range written {
		got := get(t, e.client(t, res, ""), res, 3)
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s after kill -9 (-want, +got):\n%s", res, diff)
		}
	}
}
