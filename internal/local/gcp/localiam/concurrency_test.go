package localiam_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// docs/google-cloud.md §1 "etag and read-modify-write": the Go clients do not retry
// ABORTED, so the caller re-reads and re-applies with backoff. 50 concurrent
// writers through the real client lose nothing, and the server must have
// refused at least one stale write. The stored policy is persisted (Dir) to
// exercise the durable path under contention.
func TestConcurrentReadModifyWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{Dir: t.TempDir()})
	c := e.client(t, project, "")
	const writers = 50
	end := t0.Add(time.Hour)

	// All writers read before anyone writes, so conflicts are certain
	// rather than a matter of scheduling luck.
	var ready sync.WaitGroup
	ready.Add(writers)
	start := make(chan struct{})
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			member := fmt.Sprintf("user:w%02d@example.com", i)
			backoff := time.Millisecond
			first := true
			for attempt := 0; attempt < 500; attempt++ {
				p, err := c.GetIamPolicy(t.Context(), &iampb.GetIamPolicyRequest{Resource: project, Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}})
				if first {
					ready.Done()
					<-start
					first = false
				}
				if err != nil {
					errs <- fmt.Errorf("%s: GetIamPolicy: %w", member, err)
					return
				}
				p.Version = 3
				p.Bindings = append(p.Bindings, condBinding("roles/compute.admin", jitCondition(t0, end), member))
				_, err = c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: project, Policy: p})
				if err == nil {
					errs <- nil
					return
				}
				if codeOf(err) != codes.Aborted {
					errs <- fmt.Errorf("%s: SetIamPolicy: %w", member, err)
					return
				}
				time.Sleep(backoff)
				backoff = min(2*backoff, 20*time.Millisecond)
			}
			errs <- fmt.Errorf("%s: gave up", member)
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	p := e.srv.Policy(project)
	if len(p.GetBindings()) != 1 {
		t.Fatalf("bindings = %d, want the 50 members merged into one (role, condition) binding: %v", len(p.GetBindings()), p)
	}
	got := map[string]bool{}
	for _, m := range p.GetBindings()[0].GetMembers() {
		got[m] = true
	}
	for i := range writers {
		if m := fmt.Sprintf("user:w%02d@example.com", i); !got[m] {
			t.Errorf("lost update: %s missing", m)
		}
	}
	if e.srv.AbortedCount() == 0 {
		t.Error("the server never answered ABORTED: the etag check is not exercised")
	}
	t.Logf("ABORTED answers: %d", e.srv.AbortedCount())
}

// docs/google-cloud.md §1: a version-1 write over a conditional policy is refused and
// the conditions survive, also when racing with version-3 writers.
func TestConcurrentVersion1WriteRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	c := e.client(t, folder, "")
	set(t, c, folder, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", condA, "user:a@example.com")}})
	want := proto.Clone(e.srv.Policy(folder).GetBindings()[0])

	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: folder, Policy: &iampb.Policy{
				Version: 1, Bindings: []*iampb.Binding{binding("roles/browser", fmt.Sprintf("user:v1-%d@example.com", i))},
			}})
			if codeOf(err) != codes.InvalidArgument {
				t.Errorf("version-1 write %d: err = %v, want InvalidArgument", i, err)
			}
		}()
	}
	wg.Wait()
	var found bool
	for _, b := range e.srv.Policy(folder).GetBindings() {
		if proto.Equal(b, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("the conditional binding was lost: %v", e.srv.Policy(folder))
	}
}
