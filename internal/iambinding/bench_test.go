package iambinding

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/googleapis/gax-go/v2"

	"github.com/jitpipeline/jit/internal/iamqueue"
)

// BenchmarkTableWritersAcrossInstances is issue 14's case: 200 concurrent
// activations on one project, each handled by a function instance of its
// own — a Writer with its own gRPC connection to the local IAM (the real
// Resource Manager client), sharing only the ledger — with the production
// retry settings. queue=none is the code path without a queue (each Writer
// coalesces only its own calls); queue=sqlite shares the embedded ledger's
// write queue, with the default pacing of 100 ms per write and waiters
// polling every 2–10 ms. It lives here rather than in internal/local/pipeline
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
	}{
		{"queue=none", false},
		{"queue=sqlite", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var grants, calls, givenUp int64
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				e := newEnv(b, nil)
				var q iamqueue.Queue
				if bc.queue {
					q = newQueue(b)
				}
				ins := make([]*instance, users)
				for i := range ins {
					ins[i] = e.instance(b, nil, func(c *Config) {
						// Production retries, as the function instances have.
						c.Backoff = gax.Backoff{}
						c.MaxAttempts = 0
						c.MinWriteInterval = 0
						c.PollInterval = 10 * time.Millisecond
						c.Queue = q
					})
				}
				var failed atomic.Int64
				var ready, wg sync.WaitGroup
				ready.Add(1)
				for i, in := range ins {
					wg.Go(func() {
						ready.Wait()
						m := fmt.Sprintf("user:user%03d@example.com", i)
						if _, err := in.w.Apply(b.Context(), change(project, m, "", window1(m))); err != nil {
							failed.Add(1)
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
