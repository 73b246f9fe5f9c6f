package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/pipeline"
)

// jitBin is the real binary, built once by TestMain: the CLI tests run it
// as people do, with its flags, exit codes and output streams.
var jitBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jit-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	jitBin = filepath.Join(dir, "jit")
	build := exec.Command("go", "build", "-o", jitBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building jit:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startPipeline starts the embedded pipeline with the demo policy on a
// clock 60 times real time (a PT1M grant lasts a second) and returns its URL.
func startPipeline(t *testing.T) string {
	t.Helper()
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, pipeline.DemoPolicy(), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Start(t.Context(), pipeline.Config{
		DataDir: t.TempDir(), Addr: "127.0.0.1:0", PolicyFile: policyFile,
		Clock: clock.Scaled(time.Now(), 60),
		// The tests make many calls as one person.
		RateLimit: &api.RateLimit{Every: time.Millisecond, Burst: 10000},
		// On the fast clock a day is 24 real minutes: IAM writes under
		// -race do not speed up with it.
		ActivationTimeout: 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.URL
}

type result struct {
	stdout, stderr string
	code           int
}

// cliEnv is the environment of the binary: nothing of the developer's
// JIT_API or ID token leaks into a test.
func cliEnv() []string {
	return append(os.Environ(), "JIT_API=", "JIT_APPROVAL_API=", "JIT_ID_TOKEN=", "JIT_IAP_CLIENT_ID=")
}

// jit runs the binary to completion.
func jit(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, jitBin, args...)
	cmd.Env = cliEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("jit %q: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// mustJit runs the binary and fails the test unless it exits 0.
func mustJit(t *testing.T, args ...string) result {
	t.Helper()
	r := jit(t, args...)
	if r.code != 0 {
		t.Fatalf("jit %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// grantJSON runs a command with --format=json that prints one grant.
func grantJSON(t *testing.T, args ...string) grantView {
	t.Helper()
	r := mustJit(t, append(args, "--format=json")...)
	var g grantView
	if err := json.Unmarshal([]byte(r.stdout), &g); err != nil {
		t.Fatalf("jit %q: not a grant: %v\n%s", args, err, r.stdout)
	}
	return g
}

// waitState polls `jit grant ID` until the grant is in state want.
func waitState(t *testing.T, api, as, id, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		g := grantJSON(t, "grant", id, "--api", api, "--as", as)
		if g.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grant %s is %s, want %s", id, g.State, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
