package wiring_test

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/googleapis/gax-go/v2"

	"github.com/jitpipeline/jit/internal/approvallink"
	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/envelope"
	"github.com/jitpipeline/jit/internal/iambinding"
	"github.com/jitpipeline/jit/internal/ledger/sqlite"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/mail"
	"github.com/jitpipeline/jit/internal/pages"
	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/wiring"
)

func complete(t *testing.T) wiring.Deps {
	t.Helper()
	l, err := sqlite.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return wiring.Deps{
		Ledger: l, Policy: noPolicy{}, Groups: noGroups{},
		Events: noPublisher{}, Lifecycle: noPublisher{}, Revocations: noPublisher{},
		Workflow: "projects/p/locations/l/workflows/w", ExecutionsURL: lifecycle.ExecutionsEndpoint,
		Executions: noExecutions{}, Callbacks: lifecycle.HTTPCallbacks{Endpoint: lifecycle.ExecutionsEndpoint},
		IAM: noIAM{}, Tasks: noTasks{}, RevokeQueue: "projects/p/locations/l/queues/q",
		RevokeURL: "https://revoke.test", TasksServiceAccount: "tasks@p.iam.gserviceaccount.com",
		Clock: clock.Real(), Logger: slog.New(slog.DiscardHandler),
		Mail: noMail{}, Journal: l, MailFrom: "jit@example.com", MailDomain: "jit.example.com",
		LinkKeys: approvallink.FileKeys(filepath.Join(t.TempDir(), "link.key")),
		PagesURL: "https://jit.example.com", CSRFKey: make([]byte, 32),
	}
}

type noMail struct{}

func (noMail) Send(context.Context, *mail.Message) error { return nil }

// Every function builds from a complete set of dependencies, with all its
// entry points.
func TestBuildsEveryFunction(t *testing.T) {
	t.Parallel()
	d := complete(t)
	intake, err := wiring.NewIntake(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := intake.Requests(envelope.StaticKeys{}, "jit-requests"); err != nil {
		t.Fatal(err)
	}
	if intake.HTTP(nil) == nil {
		t.Error("no intake HTTP handler")
	}
	approval, err := wiring.NewApproval(d)
	if err != nil {
		t.Fatal(err)
	}
	if approval.HTTP(nil) == nil || approval.Events() == nil || approval.Notify() == nil {
		t.Error("no approval handlers")
	}
	if _, err := approval.Pages(pages.AuthenticatorFunc(func(*http.Request) (lifecycle.Caller, error) { return lifecycle.Caller{}, nil })); err != nil {
		t.Errorf("approval pages: %v", err)
	}
	g, err := wiring.NewGrant(d)
	if err != nil {
		t.Fatal(err)
	}
	if g.Events() == nil {
		t.Error("no grant handler")
	}
	r, err := wiring.NewRevoke(d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events() == nil || r.Tasks(auth.Service{}) == nil || r.Sweep(auth.Service{}) == nil {
		t.Error("no revoke handlers")
	}
}

// A function missing a dependency it needs does not start, and says which;
// what it does not need may be missing.
func TestMissingDependencyNamed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		strip func(*wiring.Deps)
		build func(wiring.Deps) error
		want  string // "" for no error
	}{
		{"grant without Tasks", func(d *wiring.Deps) { d.Tasks = nil }, buildGrant, "lifecycle: grant service: Tasks is required"},
		{"grant without IAM", func(d *wiring.Deps) { d.IAM = nil }, buildGrant, "IAM is required"},
		{"grant without the queue", func(d *wiring.Deps) { d.RevokeQueue = "" }, buildGrant, "RevokeQueue is required"},
		{"revoke without Tasks", func(d *wiring.Deps) { d.Tasks = nil }, buildRevoke, "lifecycle: revoke service: Tasks is required"},
		{"revoke without callbacks", func(d *wiring.Deps) { d.Callbacks, d.Executions, d.Groups = nil, nil, nil }, buildRevoke, ""},
		{"intake without revocations", func(d *wiring.Deps) { d.Revocations = nil }, buildIntake, "Revocations is required"},
		{"intake without IAM or Tasks", func(d *wiring.Deps) { d.IAM, d.Tasks, d.Executions = nil, nil, nil }, buildIntake, ""},
		{"approval without executions", func(d *wiring.Deps) { d.Executions = nil }, buildApproval, "Executions is required"},
		{"approval without IAM or Tasks", func(d *wiring.Deps) { d.IAM, d.Tasks = nil, nil }, buildApproval, ""},
		{"approval without mail", func(d *wiring.Deps) { d.Mail, d.Journal = nil, nil }, buildApproval, "Sender is required"},
		{"approval without link keys", func(d *wiring.Deps) { d.LinkKeys, d.PagesURL = nil, "" }, buildApproval, "LinkKeys is required\nPagesURL is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := complete(t)
			tc.strip(&d)
			err := tc.build(d)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

func buildIntake(d wiring.Deps) error   { _, err := wiring.NewIntake(d); return err }
func buildApproval(d wiring.Deps) error { _, err := wiring.NewApproval(d); return err }
func buildGrant(d wiring.Deps) error    { _, err := wiring.NewGrant(d); return err }
func buildRevoke(d wiring.Deps) error   { _, err := wiring.NewRevoke(d); return err }

type noPolicy struct{}

func (noPolicy) Current(context.Context) (*policy.Policy, string, error) { return nil, "", nil }

type noGroups struct{}

func (noGroups) GroupsOf(context.Context, string) ([]string, error)  { return nil, nil }
func (noGroups) MembersOf(context.Context, string) ([]string, error) { return nil, nil }

type noPublisher struct{}

func (noPublisher) Publish(context.Context, cloudevents.Event) (string, error) { return "", nil }

type noExecutions struct{}

func (noExecutions) GetExecution(context.Context, *executionspb.GetExecutionRequest, ...gax.CallOption) (*executionspb.Execution, error) {
	return &executionspb.Execution{}, nil
}

type noIAM struct{}

func (noIAM) Apply(context.Context, ...iambinding.Change) (iambinding.Result, error) {
	return iambinding.Result{}, nil
}

func (noIAM) Verify(context.Context, ...iambinding.Change) ([]iambinding.Check, error) {
	return nil, nil
}

func (noIAM) Purge(context.Context, ...string) (iambinding.Result, error) {
	return iambinding.Result{}, nil
}

type noTasks struct{}

func (noTasks) CreateTask(context.Context, *cloudtaskspb.CreateTaskRequest, ...gax.CallOption) (*cloudtaskspb.Task, error) {
	return &cloudtaskspb.Task{}, nil
}

func (noTasks) DeleteTask(context.Context, *cloudtaskspb.DeleteTaskRequest, ...gax.CallOption) error {
	return nil
}
