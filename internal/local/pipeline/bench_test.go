package pipeline_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/local/pipeline"
	"github.com/jitpipeline/jit/internal/local/world"
)

func benchWorld(n int) (*world.World, []string) {
	w := world.Default()
	var users []string
	for i := range n {
		u := fmt.Sprintf("bench%04d@example.com", i)
		users = append(users, u)
		w.Users = append(w.Users, world.User{Email: u})
		w.Groups[0].Members = append(w.Groups[0].Members, "user:"+u) // sre
	}
	return w, users
}

// waitActive polls the ledger (not the API) so the measure is the
// pipeline's, not the poller's.
func waitActive(b *testing.B, p *pipeline.Pipeline, id string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if g, err := p.Ledger.Get(b.Context(), id); err == nil && g.State == grant.Active {
			return
		}
	}
	b.Fatalf("%s never became ACTIVE", id)
}

// BenchmarkRequestToActive is the latency of a self-approved request on
// the embedded pipeline in real time: intake → grant.requested → Eventarc
// → workflow → activation.requested → grant function (IAM write, task) →
// ACTIVE. Reports p50, p90 and p99.
func BenchmarkRequestToActive(b *testing.B) {
	w, users := benchWorld(200)
	p, err := pipeline.Start(b.Context(), pipeline.Config{DataDir: b.TempDir(), Addr: "127.0.0.1:0", World: w, Clock: clock.Real()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	e := &env{t: b, p: p, url: p.URL}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		id := benchRequest(b, e, users[i%len(users)])
		waitActive(b, p, id)
		lat = append(lat, time.Since(start))
		i++
	}
	reportPercentiles(b, lat)
}

// BenchmarkConcurrentGrants is throughput: batches of 100 concurrent
// self-approved requests by different users on one project. Reports
// grants/s and grants per IAM write (the writer coalesces concurrent
// changes of one policy).
func BenchmarkConcurrentGrants(b *testing.B) {
	const batch = 100
	w, users := benchWorld(batch * 10)
	p, err := pipeline.Start(b.Context(), pipeline.Config{DataDir: b.TempDir(), Addr: "127.0.0.1:0", World: w, Clock: clock.Real()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	e := &env{t: b, p: p, url: p.URL}
	writes0, grants, round := p.Cloud.IAM.WriteCount(), 0, 0
	start := time.Now()
	for b.Loop() {
		ids := make([]string, batch)
		var wg sync.WaitGroup
		for j := range batch {
			u := users[(round*batch+j)%len(users)]
			wg.Go(func() { ids[j] = benchRequest(b, e, u) })
		}
		wg.Wait()
		for _, id := range ids {
			waitActive(b, p, id)
		}
		grants += batch
		round++
	}
	elapsed := time.Since(start)
	writes := p.Cloud.IAM.WriteCount() - writes0
	b.ReportMetric(float64(grants)/elapsed.Seconds(), "grants/s")
	b.ReportMetric(float64(grants)/float64(max(writes, 1)), "grants/IAM-write")
}

func benchRequest(b *testing.B, e *env, user string) string {
	code, g := e.call("POST", "/v1/grants", user, map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1H", "justification": "benchmark"})
	if code != 201 {
		b.Fatalf("request: %d %v", code, g)
	}
	return g["id"].(string)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.90), "p90-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
