// Package emulators starts Google's own emulators, installed with the
// Google Cloud CLI, for tests: the Pub/Sub and Firestore emulators. Where
// gcloud, the component or Java is missing, the test is skipped with a
// message naming what is missing — never passed silently.
package emulators

import (
	"errors"
	"fmt"
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
	emu, err := Start(component, args...)
	var missing *Unavailable
	if errors.As(err, &missing) {
		t.Skip("skipping: " + missing.Reason)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Stop)
	return emu.Addr
}

// Unavailable says which prerequisite of an emulator is missing: tests
// skip with its reason.
type Unavailable struct{ Reason string }

func (u *Unavailable) Error() string { return u.Reason }

// Emulator is a running emulator process (in a process group of its own:
// gcloud forks the JVM).
type Emulator struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

// Start runs `gcloud ARGS… --host-port=127.0.0.1:PORT --quiet` on a free
// port and waits until it accepts connections (90 s at most), for callers
// that manage its lifetime themselves (e.g. once per package in TestMain).
func Start(component string, args ...string) (*Emulator, error) {
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return nil, &Unavailable{fmt.Sprintf("gcloud is not installed (needed for Google's %s)", component)}
	}
	if real, err := filepath.EvalSymlinks(gcloud); err == nil {
		root := filepath.Dir(filepath.Dir(real))
		if _, err := os.Stat(filepath.Join(root, "platform", component)); err != nil {
			return nil, &Unavailable{fmt.Sprintf("the gcloud %s component is not installed under %s", component, root)}
		}
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, &Unavailable{fmt.Sprintf("Google's %s needs Java, and java is not on PATH", component)}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to find a free port: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	e := &Emulator{Addr: addr, done: make(chan struct{}), out: &syncBuffer{}}
	e.cmd = exec.Command(gcloud, append(args, "--host-port="+addr, "--quiet")...) //nolint:gosec // G204: gcloud from PATH with this package's own arguments
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	e.cmd.Env = append(os.Environ(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1")
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", component, err)
	}
	go func() { e.cmd.Wait(); close(e.done) }() //nolint:errcheck // reported through done
	deadline := time.Now().Add(90 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return e, nil
		}
		select {
		case <-e.done:
			return nil, fmt.Errorf("%s exited before listening on %s:\n%s", component, addr, e.out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("%s did not listen on %s within 90 s:\n%s", component, addr, e.out.String())
		}
	}
}

// Output is what the emulator printed so far, for error messages.
func (e *Emulator) Output() string { return e.out.String() }

// Exited is closed when the emulator process ends.
func (e *Emulator) Exited() <-chan struct{} { return e.done }

// Stop kills the emulator's process group and waits for it.
func (e *Emulator) Stop() {
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // best effort
	<-e.done
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
