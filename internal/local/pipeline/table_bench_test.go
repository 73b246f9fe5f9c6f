package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/jitpipeline/jit/internal/benchref"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/pipeline"
	"github.com/jitpipeline/jit/internal/local/world"
)

// The BenchmarkTable* benchmarks are rows of `make bench`
// (internal/tools/benchtable, docs/performance.md): each measures its
// reference in the same run and reports the ratio.

// startBench starts the embedded default in real time with n extra SRE
// users, classic mode off (its catalog refresh is background load that
// the measures below are not about).
func startBench(b *testing.B, w *world.World, policyFile string) *pipeline.Pipeline {
	b.Helper()
	p, err := pipeline.Start(b.Context(), pipeline.Config{DataDir: b.TempDir(), Addr: "127.0.0.1:0", World: w, Clock: clock.Real(), PolicyFile: policyFile, NoClassic: true, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// referenceIAM is a Resource Manager client of the pipeline's own IAM
// server, acting as the grant function's service account: the reference
// read-modify-write goes through the same client, connection kind and
// server as the grant function's.
func referenceIAM(b *testing.B, p *pipeline.Pipeline) *resourcemanager.ProjectsClient {
	b.Helper()
	c, err := resourcemanager.NewProjectsClient(b.Context(), append(p.Cloud.ClientOptions(),
		option.WithGRPCDialOption(grpc.WithUnaryInterceptor(localiam.UnaryClientInterceptor("serviceAccount:"+pipeline.GrantSA))))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// requestToActive is one self-approved request's latency: POST until
// the ledger says ACTIVE, polled every 250 µs.
func requestToActive(b *testing.B, e *env, user, entitlement string) time.Duration {
	b.Helper()
	start := time.Now()
	code, g := e.call("POST", "/v1/grants", user, map[string]any{"entitlement": entitlement, "requestedDuration": "PT1H", "justification": "benchmark"})
	if code != http.StatusCreated {
		b.Fatalf("request by %s: %d %v", user, code, g)
	}
	id := g["id"].(string)
	for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Microsecond) {
		if gr, err := e.p.Ledger.Get(context.Background(), id); err == nil && gr.State == grant.Active {
			return time.Since(start)
		}
	}
	b.Fatalf("%s never became ACTIVE", id)
	return 0
}

// BenchmarkTableCriticalPath: request→ACTIVE of a self-approved request
// on the embedded default ÷ one IAM read-modify-write of the same policy
// through the real client, interleaved, medians of 25 each. Requests are
// at least 150 ms apart: the grant function writes one project's policy at
// most every 100 ms (iambinding.DefaultMinWriteInterval, the Resource
// Manager quota), and back-to-back requests on one project would measure
// that pacing, not the path.
func BenchmarkTableCriticalPath(b *testing.B) {
	w, users := benchWorld(60)
	p := startBench(b, w, "")
	e := &env{t: b, p: p, url: p.URL}
	rm := referenceIAM(b, p)
	const samples, warm = 25, 5
	for b.Loop() {
		var act, rmw []float64
		for i := range samples + warm {
			t0 := time.Now()
			if err := benchref.ReadModifyWrite(b.Context(), rm, "projects/demo-project", "roles/browser", "user:reference@example.com"); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			time.Sleep(150 * time.Millisecond)
			a := requestToActive(b, e, users[i%len(users)], "demo.demo-project.viewer")
			if i >= warm {
				rmw = append(rmw, benchref.Millis(d))
				act = append(act, benchref.Millis(a))
			}
		}
		ma, mr := benchref.Median(act), benchref.Median(rmw)
		b.ReportMetric(ma, "active-ms")
		b.ReportMetric(mr, "ref-rmw-ms")
		b.ReportMetric(ma/mr, "ratio")
	}
}

// BenchmarkTableIntake: requests per second of POST /v1/grants (distinct
// users, the self-approved viewer entitlement, the rest of the pipeline
// running on the same cores) ÷ a handler making one durable SQLite
// commit; and GET /v1/entitlements ÷ a no-op handler. 8 closed-loop
// clients each.
func BenchmarkTableIntake(b *testing.B) {
	const workers, posts, gets = 8, 400, 2000
	w, users := benchWorld(posts)
	p := startBench(b, w, "")
	commit, err := benchref.NewCommitter(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer commit.Close()
	commitURL, stopCommit, err := benchref.Serve(commit)
	if err != nil {
		b.Fatal(err)
	}
	defer stopCommit()
	noopURL, stopNoop, err := benchref.Serve(http.HandlerFunc(benchref.NoopFunction))
	if err != nil {
		b.Fatal(err)
	}
	defer stopNoop()
	body := func(i int) []byte {
		raw, _ := json.Marshal(map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1H", "justification": fmt.Sprintf("benchmark %d", i)})
		return raw
	}
	post := func(url string, user func(int) string) func(context.Context, int) (*http.Request, error) {
		return func(ctx context.Context, i int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body(i)))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Requested-With", "bench")
			req.Header.Set("X-Debug-Principal", "user:"+user(i))
			return req, nil
		}
	}
	get := func(url string) func(context.Context, int) (*http.Request, error) {
		return func(ctx context.Context, i int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("X-Debug-Principal", "user:"+users[i%len(users)])
			return req, nil
		}
	}
	round := 0
	for b.Loop() {
		if round > 0 {
			b.Fatal("run BenchmarkTableIntake with -benchtime=1x: each user requests once")
		}
		round++
		ctx := b.Context()
		refGet, err := benchref.Load{Workers: workers, N: gets, Want: 200, Request: get(noopURL)}.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		gotGet, err := benchref.Load{Workers: workers, N: gets, Want: 200, Request: get(p.URL + "/v1/entitlements")}.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		refPost, err := benchref.Load{Workers: workers, N: posts, Want: 201, Request: post(commitURL, func(i int) string { return users[i] })}.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		gotPost, err := benchref.Load{Workers: workers, N: posts, Want: 201, Request: post(p.URL+"/v1/grants", func(i int) string { return users[i] })}.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(gotPost, "post-req/s")
		b.ReportMetric(refPost, "ref-commit-req/s")
		b.ReportMetric(gotPost/refPost, "post-ratio")
		b.ReportMetric(gotGet, "get-req/s")
		b.ReportMetric(refGet, "ref-noop-req/s")
		b.ReportMetric(gotGet/refGet, "get-ratio")
	}
}

// growthProjects spreads the 1,000 grants of BenchmarkTableGrowth over
// projects as a real organization would: one project's allow policy
// holds "a few 10s of KB" (docs/google-cloud.md §1), far less than 1,000
// conditional bindings.
const growthProjects = 20

// growthSetup adds growthProjects projects to w and writes a policy with
// a self-approved viewer entitlement on each, for the SRE group.
func growthSetup(b *testing.B, w *world.World) (policyFile string, entitlements []string) {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("schemaVersion: 1\nenvironment:\n  name: bench\n  access:\n    - {principal: \"class:iapUsers\", allow: \"VIEW\"}\n  constraints:\n    join:\n      - {type: expiry, min: PT1M, max: PT8H}\n  systems:\n")
	for i := range growthProjects {
		id := fmt.Sprintf("bench-project-%02d", i)
		w.Projects = append(w.Projects, world.Project{ID: id, Number: 400000000000 + int64(i), Name: id, Parent: w.Projects[0].Parent})
		w.Bindings = append(w.Bindings, world.Binding{Resource: "projects/" + id, Role: "roles/browser", Members: []string{"domain:example.com"}})
		fmt.Fprintf(&sb, "    - name: %s\n      groups:\n        - name: viewer\n          access:\n            - {principal: \"group:sre@example.com\", allow: \"JOIN, APPROVE_SELF\"}\n          privileges:\n            iam:\n              - {resource: projects/%s, role: roles/compute.viewer}\n", id, id)
		entitlements = append(entitlements, "bench."+id+".viewer")
	}
	policyFile = filepath.Join(b.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return policyFile, entitlements
}

// liveHeapMiB is the heap in use after a collection: the pipeline's
// memory, without garbage not yet collected.
func liveHeapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// BenchmarkTableGrowth: request→ACTIVE (median of 15) and live heap of
// the pipeline (above the process's before it started) at 1,000 active
// grants ÷ the same at the start (idle, after three requests).
func BenchmarkTableGrowth(b *testing.B) {
	if os.Getenv(growthChild) == "" {
		// Each run in a process of its own: the heap of a process that ran
		// other pipelines first is not an idle pipeline's.
		growthInChild(b)
		return
	}
	const active, samples = 1000, 15
	w, users := benchWorld(active + 2*samples)
	policyFile, ents := growthSetup(b, w)
	p := startBench(b, w, policyFile)
	e := &env{t: b, p: p, url: p.URL}
	round := 0
	for b.Loop() {
		if round > 0 {
			b.Fatal("run BenchmarkTableGrowth with -benchtime=1x")
		}
		round++
		measure := func(from int) float64 {
			var lat []float64
			for i := range samples {
				lat = append(lat, benchref.Millis(requestToActive(b, e, users[from+i], ents[i%len(ents)])))
			}
			return benchref.Median(lat)
		}
		// A few requests first, so both measures see warm caches.
		for i := range 3 {
			requestToActive(b, e, users[active+2*samples-1-i], ents[i])
		}
		idle := liveHeapMiB()
		first := measure(active)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		ids := make([]string, active)
		for i := range active {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				code, g := e.call("POST", "/v1/grants", users[i], map[string]any{"entitlement": ents[i%len(ents)], "requestedDuration": "PT8H", "justification": "growth"})
				if code != http.StatusCreated {
					b.Errorf("request %d: %d %v", i, code, g)
					return
				}
				ids[i] = g["id"].(string)
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id != "" {
				waitActive(b, p, id)
			}
		}
		at := measure(active + samples)
		full := liveHeapMiB()
		if path := os.Getenv("JIT_BENCH_HEAPPROFILE"); path != "" {
			// Where the memory at 1,000 grants is: go tool pprof PATH.
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.WriteHeapProfile(f); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		b.ReportMetric(first, "first-ms")
		b.ReportMetric(at, "at-1000-ms")
		b.ReportMetric(at/first, "latency-ratio")
		b.ReportMetric(idle, "idle-MiB")
		b.ReportMetric(full, "at-1000-MiB")
		b.ReportMetric(full/idle, "mem-ratio")
	}
}

const growthChild = "JIT_BENCH_GROWTH_CHILD"

// growthInChild runs BenchmarkTableGrowth once in a new process of this
// test binary and reports what it measured.
func growthInChild(b *testing.B) {
	for b.Loop() {
		cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkTableGrowth$", "-test.benchtime=1x", "-test.count=1")
		cmd.Env = append(os.Environ(), growthChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		found := false
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkTableGrowth") {
				continue
			}
			found = true
			for i := 2; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil && f[i+1] != "ns/op" {
					b.ReportMetric(v, f[i+1])
				}
			}
		}
		if !found {
			b.Fatalf("no result from the child:\n%s", out)
		}
	}
}
