package deploy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/wiring"
)

// A function whose required setting is missing fails to start, naming it,
// before any client is made.
func TestBuildNamesMissingSetting(t *testing.T) {
	t.Parallel()
	valid := Config{
		Project: "p", Policy: "gs://b/o", Workflow: "projects/p/locations/l/workflows/w",
		RevokeQueue: "projects/p/locations/l/queues/q", RevokeURL: "https://revoke", TasksSA: "tasks@p.iam.gserviceaccount.com",
	}
	noQueue, noSA, noPolicy := valid, valid, valid
	noQueue.RevokeQueue, noSA.TasksSA, noPolicy.Policy = "", "", ""
	for _, tc := range []struct {
		name  string
		build func() error
		want  []string
	}{
		{"grant without the tasks queue", func() error { _, err := buildGrant(context.Background(), noQueue); return err }, []string{"grant function", "JIT_REVOKE_QUEUE"}},
		{"revoke without the tasks identity", func() error { _, err := buildRevoke(context.Background(), noSA, "revoke"); return err }, []string{"revoke function", "JIT_TASKS_SERVICE_ACCOUNT"}},
		{"sweep without the tasks queue", func() error { _, err := buildRevoke(context.Background(), noQueue, "sweep"); return err }, []string{"sweep function", "JIT_REVOKE_QUEUE"}},
		{"intake without a policy", func() error { _, err := buildIntake(context.Background(), noPolicy); return err }, []string{"intake function", "JIT_POLICY"}},
		{"approval notifications without the mail settings", func() error { _, err := buildApproval(context.Background(), valid, "approvalNotify"); return err }, []string{"approvalNotify function", "JIT_SMTP_HOST", "JIT_LINK_SECRET", "JIT_PAGES_URL", "JIT_MAIL_FROM"}},
		{"approval without a policy", func() error { _, err := buildApproval(context.Background(), noPolicy, "approval"); return err }, []string{"approval function", "JIT_POLICY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.build()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not name %q", err, w)
				}
			}
		})
	}
}

// The clients are built from a context that outlives the invocation that
// happened to come first: a request's context ends with the request.
func TestLazyBuildsFromLongLivedContext(t *testing.T) {
	t.Parallel()
	var built []context.Context
	fn := lazyEvent(func(ctx context.Context) (wiring.CloudEventFunc, error) {
		built = append(built, ctx)
		return func(context.Context, cloudevents.Event) error { return nil }, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 2 {
		if err := fn(ctx, cloudevents.NewEvent()); err != nil {
			t.Fatal(err)
		}
	}
	if len(built) != 1 || built[0].Err() != nil {
		t.Fatalf("built %d times; context error %v", len(built), built[0].Err())
	}

	var httpBuilt []context.Context
	h := lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		httpBuilt = append(httpBuilt, ctx)
		return http.NotFoundHandler(), nil
	})
	req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if len(httpBuilt) != 1 || httpBuilt[0].Err() != nil {
		t.Fatalf("HTTP handler built from the request's context")
	}
}
