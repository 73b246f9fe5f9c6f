package pushbridge

import (
	"testing"

	"github.com/jitpipeline/jit/internal/local/gcp/emulators"
)

// TestEmulator runs the delivery and dead-letter tests against Google's
// Pub/Sub emulator, reached as PUBSUB_EMULATOR_HOST would reach it
// (docs/google-cloud.md §5 "pstest and the emulator convention", §11).
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
	return emulators.PubSub(t, testProject)
}
