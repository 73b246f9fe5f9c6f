package iambinding

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/google/go-cmp/cmp"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// The test world: organizations/1 > folders/10 > projects/proj-alpha (1001).
const (
	org     = "organizations/1"
	folder  = "folders/10"
	project = "projects/proj-alpha"
)

// t0 is "now" in every test.
var t0 = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is a settable clock shared by the writer and the local IAM.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// env is a local IAM served on loopback, the real Resource Manager
// clients, recorders between them and the writer, and the writer.
type env struct {
	srv   *localiam.Server
	clock *clock
	// Raw clients, for a foreign writer that bypasses the recorders.
	projects      *resourcemanager.ProjectsClient
	folders       *resourcemanager.FoldersClient
	organizations *resourcemanager.OrganizationsClient
	// Recorders wrap the raw clients for the writer.
	recProjects, recFolders, recOrganizations *recorder
	w                                         *Writer
	// dial reaches the local IAM, for writers with connections of their own.
	dial []option.ClientOption
}

// newEnv builds the world; configure adjusts the writer's Config. Every
// test using it also asserts, at cleanup, the rules of docs/architecture.md §3 on every
// call the writer made (see recorder).
func newEnv(t testing.TB, configure func(*Config)) *env {
	t.Helper()
	c := &clock{t: t0}
	srv, err := localiam.New(localiam.Config{Now: c.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("localiam.New: %v", err)
	}
	for _, err := range []error{
		srv.AddOrganization("1"),
		srv.AddFolder("10", org),
		srv.AddProject("proj-alpha", 1001, folder),
	} {
		if err != nil {
			t.Fatalf("seeding the world: %v", err)
		}
	}
	g, err := loopback.ServeGRPC("127.0.0.1:0", srv.Register)
	if err != nil {
		t.Fatalf("ServeGRPC: %v", err)
	}
	t.Cleanup(g.Stop)

	ctx := context.Background()
	e := &env{srv: srv, clock: c, dial: g.ClientOptions()}
	if e.projects, err = resourcemanager.NewProjectsClient(ctx, g.ClientOptions()...); err != nil {
		t.Fatalf("NewProjectsClient: %v", err)
	}
	if e.folders, err = resourcemanager.NewFoldersClient(ctx, g.ClientOptions()...); err != nil {
		t.Fatalf("NewFoldersClient: %v", err)
	}
	if e.organizations, err = resourcemanager.NewOrganizationsClient(ctx, g.ClientOptions()...); err != nil {
		t.Fatalf("NewOrganizationsClient: %v", err)
	}
	t.Cleanup(func() {
		e.projects.Close()
		e.folders.Close()
		e.organizations.Close()
	})
	e.recProjects = newRecorder(t, e.projects)
	e.recFolders = newRecorder(t, e.folders)
	e.recOrganizations = newRecorder(t, e.organizations)

	cfg := Config{
		Projects:      e.recProjects,
		Folders:       e.recFolders,
		Organizations: e.recOrganizations,
		Now:           c.Now,
		Backoff:       gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		Logger:        slog.New(slog.DiscardHandler),
	}
	if configure != nil {
		configure(&cfg)
	}
	if e.w, err = New(cfg); err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// recorder sits between the writer and a real client. It checks the rules
// of docs/architecture.md §3 and docs/google-cloud.md §1 on every call: reads ask for version 3;
// writes send version 3, the etag of the read they follow, and no
// _withcond_ role. It can also inject errors and run a hook after a read.
type recorder struct {
	next IAMClient

	mu       sync.Mutex
	gets     int
	sets     int
	lastEtag map[string][]byte
	problems []string
	// setTimes are when each SetIamPolicy call reached the recorder.
	setTimes []time.Time

	// afterGet runs after the n-th (1-based) successful read returned,
	// before the writer sees it.
	afterGet func(n int, resource string)
	// getErr and setErr, if they return an error for the n-th call, make
	// it fail with that error without reaching IAM.
	getErr, setErr func(n int) error
}

func newRecorder(t testing.TB, next IAMClient) *recorder {
	r := &recorder{next: next, lastEtag: map[string][]byte{}}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.problems {
			t.Errorf("docs/architecture.md §3 rule broken: %s", p)
		}
	})
	return r
}

func (r *recorder) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *recorder) GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error) {
	r.mu.Lock()
	r.gets++
	n := r.gets
	if v := req.GetOptions().GetRequestedPolicyVersion(); v != 3 {
		r.problem("GetIamPolicy %s asked for version %d, want 3", req.GetResource(), v)
	}
	inject, hook := r.getErr, r.afterGet
	r.mu.Unlock()
	if inject != nil {
		if err := inject(n); err != nil {
			return nil, err
		}
	}
	p, err := r.next.GetIamPolicy(ctx, req, opts...)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.lastEtag[req.GetResource()] = p.GetEtag()
	r.mu.Unlock()
	if hook != nil {
		hook(n, req.GetResource())
	}
	return p, nil
}

func (r *recorder) SetIamPolicy(ctx context.Context, req *iampb.SetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error) {
	r.mu.Lock()
	r.sets++
	n := r.sets
	r.setTimes = append(r.setTimes, time.Now())
	p := req.GetPolicy()
	if p.GetVersion() != 3 {
		r.problem("SetIamPolicy %s sent version %d, want 3", req.GetResource(), p.GetVersion())
	}
	if len(p.GetEtag()) == 0 {
		r.problem("SetIamPolicy %s sent no etag (a blind write)", req.GetResource())
	} else if !bytes.Equal(p.GetEtag(), r.lastEtag[req.GetResource()]) {
		r.problem("SetIamPolicy %s sent etag %x, but the last read returned %x", req.GetResource(), p.GetEtag(), r.lastEtag[req.GetResource()])
	}
	for _, b := range p.GetBindings() {
		if strings.Contains(b.GetRole(), "_withcond_") {
			r.problem("SetIamPolicy %s sent role %s", req.GetResource(), b.GetRole())
		}
	}
	inject := r.setErr
	r.mu.Unlock()
	if inject != nil {
		if err := inject(n); err != nil {
			return nil, err
		}
	}
	return r.next.SetIamPolicy(ctx, req, opts...)
}

func (r *recorder) counts() (gets, sets int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets, r.sets
}

// hasRole asks the local IAM whether member holds role on resource at at.
func (e *env) hasRole(t testing.TB, member, role, resource string, at time.Time) bool {
	t.Helper()
	ok, err := e.srv.HasRole(t.Context(), member, role, resource, at)
	if err != nil {
		t.Fatalf("HasRole(%s, %s, %s, %v): %v", member, role, resource, at, err)
	}
	return ok
}

// seed sets resource's policy as an administrator would.
func (e *env) seed(t testing.TB, resource string, bindings ...*iampb.Binding) *iampb.Policy {
	t.Helper()
	p, err := e.srv.SetPolicy(resource, &iampb.Policy{Version: 3, Bindings: bindings})
	if err != nil {
		t.Fatalf("SetPolicy(%s): %v", resource, err)
	}
	return p
}

// unrelated is a policy's worth of bindings no change of the tests is
// about: unconditional ones, a non-JIT condition on a role the tests
// grant, eligibility markers (docs/jit-access.md §1.1) and a JIT activation
// of the same user and role with another resource condition.
func unrelated() []*iampb.Binding {
	return []*iampb.Binding{
		binding("roles/owner", nil, "user:owner@example.com"),
		binding("roles/browser", nil, "group:devs@example.com", "user:alice@example.com"),
		binding(roleGranted, cond("expirable access", `request.time < timestamp("2041-01-01T00:00:00Z")`, "not ours"), "user:carol@example.com"),
		binding(roleGranted, cond("Eligible for JIT access", `has({}.jitAccessConstraint)`, ""), "user:alice@example.com", "group:sre@example.com"),
		binding(roleGranted, cond("Eligible with approval", `has({}.multiPartyApprovalConstraint) && resource.type == "cloudresourcemanager.googleapis.com/Project"`, ""), "user:bob@example.com"),
		binding(roleGranted, cond("JIT access activation", `((request.time >= timestamp("2039-12-31T23:00:00Z") && request.time < timestamp("2040-01-01T05:00:00Z"))) && (resource.type == "cloudresourcemanager.googleapis.com/Folder")`, "other resource condition"), "user:alice@example.com"),
	}
}

// roleGranted is the role the tests grant.
const roleGranted = "roles/compute.admin"

func binding(role string, c *expr.Expr, members ...string) *iampb.Binding {
	return &iampb.Binding{Role: role, Members: members, Condition: c}
}

func cond(title, expression, description string) *expr.Expr {
	return &expr.Expr{Title: title, Expression: expression, Description: description}
}

// bindingsWithout returns p's bindings except those for which drop is true.
func bindingsWithout(p *iampb.Policy, drop func(*iampb.Binding) bool) []*iampb.Binding {
	var out []*iampb.Binding
	for _, b := range p.GetBindings() {
		if !drop(b) {
			out = append(out, b)
		}
	}
	return out
}

// diffBindings compares binding lists as protos.
func diffBindings(want, got []*iampb.Binding) string {
	return cmp.Diff(want, got, protocmp.Transform())
}

// change builds a Change for member on roleGranted at resource.
func change(resource, member, condition string, windows ...Window) Change {
	return Change{Key: Key{Resource: resource, Role: roleGranted, Condition: condition, Member: member}, Windows: windows}
}

// window is [t0+from, t0+to) with a description naming the grant.
func window(id string, from, to time.Duration) Window {
	return Window{Start: t0.Add(from), End: t0.Add(to), GrantID: id, Description: "Approved by boss@example.com, justification: " + id}
}
