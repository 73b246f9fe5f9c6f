package localiam_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/googleapis/gax-go/v2"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The test world: organizations/1 > folders/10 > folders/11 > projects/proj-alpha (1001),
// plus projects/proj-solo (2002) outside any organization.
const (
	org       = "organizations/1"
	folder    = "folders/10"
	subfolder = "folders/11"
	project   = "projects/proj-alpha"
	projectN  = "projects/1001"
	solo      = "projects/proj-solo"
)

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

type env struct {
	srv   *localiam.Server
	addr  string
	clock *clock
}

// iamClient is the method set the three Resource Manager clients share.
type iamClient interface {
	GetIamPolicy(context.Context, *iampb.GetIamPolicyRequest, ...gax.CallOption) (*iampb.Policy, error)
	SetIamPolicy(context.Context, *iampb.SetIamPolicyRequest, ...gax.CallOption) (*iampb.Policy, error)
	TestIamPermissions(context.Context, *iampb.TestIamPermissionsRequest, ...gax.CallOption) (*iampb.TestIamPermissionsResponse, error)
}

// newEnv starts a server with the test world on loopback.
func newEnv(t *testing.T, cfg localiam.Config) *env {
	t.Helper()
	c := &clock{t: t0}
	if cfg.Now == nil {
		cfg.Now = c.Now
	}
	srv, err := localiam.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	seedWorld(t, srv)
	g, err := loopback.ServeGRPC("127.0.0.1:0", srv.Register)
	if err != nil {
		t.Fatalf("ServeGRPC: %v", err)
	}
	t.Cleanup(g.Stop)
	return &env{srv: srv, addr: g.Addr, clock: c}
}

func seedWorld(t *testing.T, srv *localiam.Server) {
	t.Helper()
	for _, err := range []error{
		srv.AddOrganization("1"),
		srv.AddFolder("10", org),
		srv.AddFolder("11", folder),
		srv.AddProject("proj-alpha", 1001, subfolder),
		srv.AddProject("proj-solo", 2002, ""),
	} {
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
}

// client returns the real Resource Manager client for the kind of resource,
// acting as principal ("" = the local operator).
func (e *env) client(t *testing.T, resource, principal string) iamClient {
	t.Helper()
	opts := loopback.ClientOptions(e.addr)
	if principal != "" {
		opts = append(opts, option.WithGRPCDialOption(grpc.WithUnaryInterceptor(localiam.UnaryClientInterceptor(principal))))
	}
	ctx := t.Context()
	var (
		c interface {
			iamClient
			Close() error
		}
		err error
	)
	switch {
	case strings.HasPrefix(resource, "projects/"):
		c, err = resourcemanager.NewProjectsClient(ctx, opts...)
	case strings.HasPrefix(resource, "folders/"):
		c, err = resourcemanager.NewFoldersClient(ctx, opts...)
	default:
		c, err = resourcemanager.NewOrganizationsClient(ctx, opts...)
	}
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t *testing.T, c iamClient, resource string, version int32) *iampb.Policy {
	t.Helper()
	p, err := c.GetIamPolicy(t.Context(), &iampb.GetIamPolicyRequest{
		Resource: resource,
		Options:  &iampb.GetPolicyOptions{RequestedPolicyVersion: version},
	})
	if err != nil {
		t.Fatalf("GetIamPolicy(%s, v%d): %v", resource, version, err)
	}
	return p
}

func set(t *testing.T, c iamClient, resource string, p *iampb.Policy) *iampb.Policy {
	t.Helper()
	out, err := c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: resource, Policy: p})
	if err != nil {
		t.Fatalf("SetIamPolicy(%s): %v", resource, err)
	}
	return out
}

func binding(role string, members ...string) *iampb.Binding {
	return &iampb.Binding{Role: role, Members: members}
}

func condBinding(role string, cond *expr.Expr, members ...string) *iampb.Binding {
	return &iampb.Binding{Role: role, Members: members, Condition: cond}
}

// jitCondition is the grant condition format of docs/architecture.md §3.
func jitCondition(start, end time.Time) *expr.Expr {
	return &expr.Expr{
		Title: "JIT access activation",
		Expression: `(request.time >= timestamp("` + start.Format(time.RFC3339) +
			`") && request.time < timestamp("` + end.Format(time.RFC3339) + `"))`,
	}
}

// codeOf is the gRPC code of an error returned by a real client.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var s interface{ GRPCStatus() *status.Status }
	if errors.As(err, &s) {
		return s.GRPCStatus().Code()
	}
	return status.Code(err)
}
