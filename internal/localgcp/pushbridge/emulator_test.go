package pushbridge

import (
	"bytes"
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

// TestEmulator runs the delivery and dead-letter tests against Google's
// Pub/Sub emulator, reached as PUBSUB_EMULATOR_HOST would reach it
// (gcp-facts §5 "pstest and the emulator convention", §11).
func TestEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the Pub/Sub emulator test in -short mode: it starts a JVM")
	}
	t.Parallel()
	addr := startEmulator(t)
	srv, err := Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Fake() != nil {
		t.Fatal("Start with an address started pstest")
	}
	t.Run("delivery", func(t *testing.T) { testDelivery(t, srv) })
	t.Run("dead letter", func(t *testing.T) { testDeadLetter(t, srv) })
}

// startEmulator starts `gcloud beta emulators pubsub start` on a free
// loopback port and kills its process group at cleanup. It skips, saying
// what is missing, when gcloud, the emulator component or Java is absent.
func startEmulator(t *testing.T) string {
	t.Helper()
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		t.Skip("skipping: gcloud is not installed (needed for `gcloud beta emulators pubsub start`)")
	}
	if real, err := filepath.EvalSymlinks(gcloud); err == nil {
		root := filepath.Dir(filepath.Dir(real))
		if _, err := os.Stat(filepath.Join(root, "platform", "pubsub-emulator")); err != nil {
			t.Skipf("skipping: the gcloud pubsub-emulator component is not installed under %s (install google-cloud-cli-pubsub-emulator or `gcloud components install pubsub-emulator`)", root)
		}
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("skipping: the Pub/Sub emulator needs Java, and java is not on PATH")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)

	var out syncBuffer
	cmd := exec.Command(gcloud, "beta", "emulators", "pubsub", "start",
		"--host-port="+addr, "--project="+testProject, "--data-dir="+t.TempDir(), "--quiet")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // gcloud forks the JVM
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start the Pub/Sub emulator: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("the Pub/Sub emulator exited before listening on %s:\n%s", addr, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Pub/Sub emulator did not listen on %s within 60 s:\n%s", addr, out.String())
		}
	}
}

// syncBuffer collects the emulator's output, written by exec's copying
// goroutines while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
