package iambinding

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gfs "cloud.google.com/go/firestore"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/iamqueue"
	"github.com/jitpipeline/jit/internal/ledger/firestore"
	"github.com/jitpipeline/jit/internal/local/gcp/emulators"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// BenchmarkTableWritersAcrossInstances is issue 14's case: 200 concurrent
// activations on one project, each handled by a function instance of its
// own — a Writer with its own gRPC connection to the local IAM (the real
// Resource Manager client), sharing only the ledger — with the production
// retry settings. queue=none is the code path without a queue (each Writer
// coalesces only its own calls); queue=sqlite shares the embedded ledger's
// write queue, with the default pacing of 100 ms per write and waiters
// polling every 2–10 ms; queue=firestore gives every instance a Firestore
// client of its own on Google's emulator (skipped where it is not
// installed), with the production poll interval. It lives here rather than in internal/local/pipeline
// because the pipeline adds nothing to the writes but minutes of setup.
//
// Reported: grants/IAM-write (grants ÷ SetIamPolicy calls the server saw,
// ABORTED ones included), given-up (Apply calls that returned an error)
// and ms/grant (wall time ÷ grants).
func BenchmarkTableWritersAcrossInstances(b *testing.B) {
	const users = 200
	for _, bc := range []struct {
		name  string
		queue bool
		// queues returns each instance's queue for one run: nil, or one
		// shared by all, or a client of its own per instance on one store.
		queues func(b *testing.B) func() iamqueue.Queue
		poll   time.Duration
	}{
		{"queue=none", false, func(*testing.B) func() iamqueue.Queue { return func() iamqueue.Queue { return nil } }, 0},
		{"queue=sqlite", true, func(b *testing.B) func() iamqueue.Queue {
			q := newQueue(b)
			return func() iamqueue.Queue { return q }
		}, 10 * time.Millisecond},
		// Google Cloud's shape: every instance its own Firestore client,
		// the production poll interval.
		{"queue=firestore", true, nil, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.StopTimer() // only the Apply calls are timed, not the emulator's start
			queues := bc.queues
			if queues == nil {
				addr := emulator(b)
				queues = func(b *testing.B) func() iamqueue.Queue { return firestoreQueues(b, addr) }
			}
			var grants, calls, givenUp int64
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				e := newEnv(b, nil)
				queue := queues(b)
				ins := make([]*instance, users)
				qs := make([]iamqueue.Queue, users)
				for i := range ins {
					qs[i] = queue()
					ins[i] = e.instance(b, nil, func(c *Config) {
						// Production retries, as the function instances have.
						c.Backoff = gax.Backoff{}
						c.MaxAttempts = 0
						c.MinWriteInterval = 0
						c.PollInterval = bc.poll
						c.Queue = qs[i]
					})
				}
				// Warm instances: every connection is up before the clock
				// starts (gRPC dials lazily), as in a running service.
				var warm sync.WaitGroup
				for i, in := range ins {
					warm.Go(func() {
						if _, err := in.w.Verify(b.Context(), change(project, "user:warm@example.com", "", window1("warm"))); err != nil {
							b.Errorf("warming up: %v", err)
						}
						if qs[i] != nil {
							if _, err := qs[i].Outcome(b.Context(), project, "warm-up"); !errors.Is(err, iamqueue.ErrUnknown) {
								b.Errorf("warming up the queue: %v", err)
							}
						}
					})
				}
				warm.Wait()
				var failed atomic.Int64
				var ready, wg sync.WaitGroup
				ready.Add(1)
				for i, in := range ins {
					wg.Go(func() {
						ready.Wait()
						m := fmt.Sprintf("user:user%03d@example.com", i)
						if _, err := in.w.Apply(b.Context(), change(project, m, "", window1(m))); err != nil {
							if failed.Add(1) == 1 {
								b.Logf("the first Apply given up: %v", err)
							}
						}
					})
				}
				b.StartTimer()
				start := time.Now()
				ready.Done()
				wg.Wait()
				elapsed += time.Since(start)
				b.StopTimer()
				grants += users
				calls += e.srv.WriteCount() + e.srv.AbortedCount()
				givenUp += failed.Load()
				for i := range users {
					if m := fmt.Sprintf("user:user%03d@example.com", i); bc.queue && !e.hasRole(b, m, roleGranted, project, t0) {
						b.Errorf("%s has no access", m)
					}
				}
			}
			b.ReportMetric(float64(grants)/float64(max(calls, 1)), "grants/IAM-write")
			b.ReportMetric(float64(givenUp)/float64(b.N), "given-up")
			b.ReportMetric(float64(elapsed.Milliseconds())/float64(grants), "ms/grant")
		})
	}
}

// emulator starts Google's Firestore emulator for one benchmark run
// (skipping, with the reason, where it is not installed) and waits until
// it answers.
func emulator(b *testing.B) string {
	b.Helper()
	addr := emulators.Firestore(b)
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	client, err := gfs.NewClient(ctx, "jit-bench", loopback.ClientOptions(addr)...)
	if err != nil {
		b.Fatalf("Firestore probe client: %v", err)
	}
	defer client.Close()
	for {
		_, err := client.Collection("probe").Doc("probe").Get(ctx)
		if status.Code(err) == codes.NotFound {
			return addr
		}
		if ctx.Err() != nil {
			b.Fatalf("the Firestore emulator is not answering: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var prefixes atomic.Int64

// firestoreQueues opens, per call of the returned function, a ledger with
// a client of its own on one fresh prefix of the emulator.
func firestoreQueues(b *testing.B, addr string) func() iamqueue.Queue {
	prefix := fmt.Sprintf("bench%d-%d-", time.Now().UnixNano(), prefixes.Add(1))
	return func() iamqueue.Queue {
		l, err := firestore.Open(context.Background(), firestore.Config{ProjectID: "jit-bench", Prefix: prefix}, loopback.ClientOptions(addr)...)
		if err != nil {
			b.Fatalf("firestore.Open: %v", err)
		}
		b.Cleanup(func() { l.Close() })
		return l.IAMQueue()
	}
}
