package pipeline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/local/pipeline"
)

const helperEnv = "LOCALPIPELINE_HELPER"

type helperConfig struct {
	DataDir, Addr, PolicyFile string
	// The clock's anchors, so virtual time goes on across the restart.
	VirtualStart, RealStart int64
	Speed                   float64
}

// TestHelperProcess runs the pipeline in a child process until it is
// killed.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("child process of TestKillDashNine")
	}
	var hc helperConfig
	if err := json.Unmarshal([]byte(raw), &hc); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Start(context.Background(), pipeline.Config{
		DataDir: hc.DataDir, Addr: hc.Addr, PolicyFile: hc.PolicyFile,
		Clock:         clock.ScaledSince(time.Unix(0, hc.VirtualStart), time.Unix(0, hc.RealStart), hc.Speed),
		SweepInterval: time.Second, ActivationTimeout: 24 * time.Hour,
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	fmt.Println("ready", p.URL)
	select {}
}

func startChild(t *testing.T, hc helperConfig) *exec.Cmd {
	t.Helper()
	raw, _ := json.Marshal(hc)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) //nolint:errcheck // may be dead already
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "ready") || strings.HasPrefix(l, "error") {
				ready <- l
			}
		}
		io.Copy(io.Discard, out) //nolint:errcheck // draining
	}()
	select {
	case l := <-ready:
		if !strings.HasPrefix(l, "ready") {
			t.Fatalf("child: %s", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not start")
	}
	return cmd
}

// The acceptance: kill -9 during an active grant and during an
// awaited approval; after the restart both finish correctly — the active
// grant ends on time with its removal verified, the awaited request is
// approved and becomes active.
func TestKillDashNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes; skipped with -short")
	}
	t.Parallel()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	now := time.Now()
	hc := helperConfig{
		DataDir: t.TempDir(), Addr: addr, PolicyFile: testPolicy(t),
		VirtualStart: now.UnixNano(), RealStart: now.UnixNano(), Speed: 20,
	}
	child := startChild(t, hc)
	e := &env{t: t, url: "http://" + addr}

	// Alice's grant lasts PT5M (15 s of real time); bob's request waits
	// for approval (window PT20M, 60 s).
	active := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	awaited := e.request("bob@example.com", "demo.demo-project.admin", "PT5M")
	e.waitHTTP("alice@example.com", active, grant.Active)
	e.waitHTTP("bob@example.com", awaited, grant.ApprovalAwaited)
	time.Sleep(300 * time.Millisecond) // let approval.requested reach the approval function

	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	child.Wait() //nolint:errcheck // killed
	startChild(t, hc)

	if code, body := e.call("POST", "/v1/grants/"+awaited+":approve", "carol@example.com", nil); code != 200 {
		t.Fatalf("approval after the restart: %d %v", code, body)
	}
	e.waitHTTP("bob@example.com", awaited, grant.Active)
	g := e.waitHTTP("alice@example.com", active, grant.Ended)
	if g["revocationVerified"] != true {
		t.Errorf("alice's grant ended without a verified removal: %v", g["timeline"])
	}
	resp, err := http.Get(e.url + "/local/iam/projects/demo-project")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(body), "roles/compute.viewer") || !strings.Contains(string(body), "roles/compute.admin") {
		t.Errorf("policy after the restart:\n%s", body)
	}
}

// waitHTTP is waitState with a longer limit, for the restart test.
func (e *env) waitHTTP(user, id string, want grant.State) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	var g map[string]any
	for time.Now().Before(deadline) {
		if _, g = e.call("GET", "/v1/grants/"+id, user, nil); g["state"] == string(want) {
			return g
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("%s stayed %v, want %s; timeline %v", id, g["state"], want, g["timeline"])
	return nil
}
