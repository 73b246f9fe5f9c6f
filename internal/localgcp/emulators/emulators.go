// Package emulators starts Google's own emulators, installed with the
// Google Cloud CLI, for tests: the Pub/Sub and Firestore emulators. Where
// gcloud, the component or Java is missing, the test is skipped with a
// message naming what is missing — never passed silently.
package emulators

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PubSub starts `gcloud beta emulators pubsub start` on a free loopback
// port and returns host:port (the value for PUBSUB_EMULATOR_HOST).
func PubSub(t testing.TB, project string) string {
	t.Helper()
	return start(t, "pubsub-emulator", []string{"beta", "emulators", "pubsub", "start", "--project=" + project, "--data-dir=" + t.TempDir()})
}

// Firestore starts `gcloud emulators firestore start` on a free loopback
// port and returns host:port (the value for FIRESTORE_EMULATOR_HOST).
func Firestore(t testing.TB) string {
	t.Helper()
	return start(t, "cloud-firestore-emulator", []string{"emulators", "firestore", "start"})
}

func start(t testing.TB, component string, args []string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipping: starts Google's %s; skipped with -short", component)
	}
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		t.Skipf("skipping: gcloud is not installed (needed for Google's %s)", component)
	}
	if real, err := filepath.EvalSymlinks(gcloud); err == nil {
		root := filepath.Dir(filepath.Dir(real))
		if _, err := os.Stat(filepath.Join(root, "platform", component)); err != nil {
			t.Skipf("skipping: the gcloud %s component is not installed under %s", component, root)
		}
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skipf("skipping: Google's %s needs Java, and java is not on PATH", component)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	var out syncBuffer
	cmd := exec.Command(gcloud, append(args, "--host-port="+addr, "--quiet")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // gcloud forks the JVM
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start %s: %v", component, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // reported through exited
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // best effort
		<-exited
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s:\n%s", component, addr, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 90 s:\n%s", component, addr, out.String())
		}
	}
}

// syncBuffer collects an emulator's output, written by exec's copying
// goroutines while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
