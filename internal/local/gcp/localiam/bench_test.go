package localiam_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"

	"github.com/jitpipeline/jit/internal/benchref"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// iamBench is a persisted project whose policy holds bindings, and the
// real Projects client aimed at it.
type iamBench struct {
	client *resourcemanager.ProjectsClient
	policy *iampb.Policy
	next   int
}

func newIAMBench(b *testing.B, bindings int) *iamBench {
	b.Helper()
	srv, err := localiam.New(localiam.Config{Dir: b.TempDir(), Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.AddProject("proj-bench", 4004, ""); err != nil {
		b.Fatal(err)
	}
	g, err := loopback.ServeGRPC("127.0.0.1:0", srv.Register)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Stop)
	c, err := resourcemanager.NewProjectsClient(context.Background(), loopback.ClientOptions(g.Addr)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	b.Cleanup(func() { _ = srv.Close() })
	// One time-bound grant per user, as the pipeline writes them.
	ib := &iamBench{client: c, policy: grants(bindings)}
	ib.set(b)
	return ib
}

// set writes the policy back with its etag, one grant replaced by a new
// one: the read-modify-write of an activation.
func (ib *iamBench) set(b *testing.B) {
	ib.next++
	if n := len(ib.policy.GetBindings()); n > 0 {
		i := ib.next % n
		ib.policy.Bindings[i].Condition = jitCondition(t0, t0.Add(time.Duration(ib.next)*time.Second+time.Hour))
	}
	out, err := ib.client.SetIamPolicy(context.Background(), &iampb.SetIamPolicyRequest{Resource: "projects/proj-bench", Policy: ib.policy})
	if err != nil {
		b.Fatalf("SetIamPolicy: %v", err)
	}
	ib.policy = out
}

// BenchmarkTableIAMWrite measures SetIamPolicy through the real Resource
// Manager client on a persisted policy of 10 and of 1,000 bindings. "ratio"
// is the cost at 1,000 over the cost at 10. The request itself carries the
// whole policy, so some growth is inherent; the durable write need not grow.
func BenchmarkTableIAMWrite(b *testing.B) {
	small, large := newIAMBench(b, 10), newIAMBench(b, 1000)
	benchref.Sizes(b, func() { small.set(b) }, func() { large.set(b) })
}
