package firestore_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gfs "cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/localgcp/loopback"
)

// The tests run against Google's Firestore emulator (DESIGN §6), started
// once for the package on first use and killed, with its whole process
// group, when the tests end. FIRESTORE_EMULATOR_HOST, if set, names a
// running emulator to use instead.

const startTimeout = 60 * time.Second

var emu struct {
	once sync.Once
	addr string
	skip string // why the emulator is unavailable: tests skip with this
	err  error  // the emulator is there but did not start: tests fail
	stop func()
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if emu.stop != nil {
		emu.stop()
	}
	os.Exit(code)
}

// emulatorAddr returns the address of a running emulator, starting it if
// needed; it skips the test when gcloud, the emulator component or java is
// missing, naming what is missing, and in -short mode.
func emulatorAddr(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("Firestore emulator tests are skipped in -short mode")
	}
	emu.once.Do(func() {
		if addr := os.Getenv("FIRESTORE_EMULATOR_HOST"); addr != "" {
			emu.addr = addr
			return
		}
		emu.addr, emu.stop, emu.skip, emu.err = startEmulator()
	})
	if emu.skip != "" {
		t.Skip(emu.skip)
	}
	if emu.err != nil {
		t.Fatalf("Firestore emulator: %v", emu.err)
	}
	return emu.addr
}

// lockedBuffer collects the emulator's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startEmulator runs `gcloud emulators firestore start` on a free loopback
// port in a process group of its own and waits until it answers a
// request. skip is set when a prerequisite is missing.
func startEmulator() (addr string, stop func(), skip string, err error) {
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return "", nil, "gcloud is not on PATH: install the Google Cloud SDK to run the Firestore emulator tests", nil
	}
	if _, err := exec.LookPath("java"); err != nil {
		return "", nil, "java is not on PATH: the Firestore emulator needs a Java runtime", nil
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, "", fmt.Errorf("failed to find a free port: %w", err)
	}
	addr = lis.Addr().String()
	lis.Close()

	var out lockedBuffer
	cmd := exec.Command(gcloud, "emulators", "firestore", "start", "--host-port="+addr)
	cmd.Env = append(os.Environ(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, "", fmt.Errorf("failed to start the emulator: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // killed on purpose
	stop = func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // best effort
		<-exited
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client, err := gfs.NewClient(ctx, "emulator-probe", loopback.ClientOptions(addr)...)
	if err != nil {
		stop()
		return "", nil, "", fmt.Errorf("failed to create a probe client: %w", err)
	}
	defer client.Close()
	for {
		probe, cancelProbe := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.Collection("probe").Doc("probe").Get(probe)
		cancelProbe()
		if status.Code(err) == codes.NotFound {
			return addr, stop, "", nil
		}
		select {
		case <-exited:
			text := out.String()
			if strings.Contains(text, "component") || strings.Contains(text, "not installed") {
				return "", nil, "the Firestore emulator component is not installed (gcloud components install cloud-firestore-emulator): " + lastLine(text), nil
			}
			return "", nil, "", fmt.Errorf("emulator exited before it was ready; output:\n%s", text)
		case <-ctx.Done():
			stop()
			return "", nil, "", fmt.Errorf("emulator not ready after %s (last probe: %v); output:\n%s", startTimeout, err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

var prefixes atomic.Int64

// newPrefix returns a collection prefix no other test (or run against a
// shared emulator) uses.
func newPrefix() string {
	return "t" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(prefixes.Add(1), 10) + "-"
}
