package firestore_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gfs "cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/local/gcp/emulators"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// The tests run against Google's Firestore emulator (docs/architecture.md §6), started
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

// startEmulator runs `gcloud emulators firestore start` (through the
// shared starter) and waits until it answers a Firestore request. skip is
// set when a prerequisite is missing.
func startEmulator() (addr string, stop func(), skip string, err error) {
	e, err := emulators.Start("cloud-firestore-emulator", "emulators", "firestore", "start")
	var missing *emulators.Unavailable
	if errors.As(err, &missing) {
		return "", nil, missing.Reason, nil
	}
	if err != nil {
		return "", nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client, err := gfs.NewClient(ctx, "emulator-probe", loopback.ClientOptions(e.Addr)...)
	if err != nil {
		e.Stop()
		return "", nil, "", fmt.Errorf("failed to create a probe client: %w", err)
	}
	defer client.Close()
	for {
		probe, cancelProbe := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.Collection("probe").Doc("probe").Get(probe)
		cancelProbe()
		if status.Code(err) == codes.NotFound {
			return e.Addr, e.Stop, "", nil
		}
		select {
		case <-e.Exited():
			return "", nil, "", fmt.Errorf("emulator exited before it was ready; output:\n%s", e.Output())
		case <-ctx.Done():
			e.Stop()
			return "", nil, "", fmt.Errorf("emulator not ready after %s (last probe: %w); output:\n%s", startTimeout, err, e.Output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var prefixes atomic.Int64

// newPrefix returns a collection prefix no other test (or run against a
// shared emulator) uses.
func newPrefix() string {
	return "t" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(prefixes.Add(1), 10) + "-"
}
