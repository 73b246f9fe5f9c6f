package localiam_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/google/go-cmp/cmp"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
	"google.golang.org/grpc/codes"
)

// groups is a static directory for Config.Members.
func groups(m map[string][]string) func(context.Context, string) ([]string, error) {
	return func(_ context.Context, g string) ([]string, error) {
		if g == "broken@example.com" {
			return nil, errors.New("directory unavailable")
		}
		return m[g], nil
	}
}

// HasRole is the ground truth: bindings on the resource or an ancestor,
// directly, through groups (nested) or a domain, with conditions evaluated by
// cel-go at the given time (docs/google-cloud.md §1: expired conditional bindings stay
// but evaluate to false; docs/architecture.md §3 grant format).
func TestHasRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{Members: groups(map[string][]string{
		"admins@example.com": {"user:carol@example.com", "group:oncall@example.com"},
		"oncall@example.com": {"user:dave@example.com", "group:admins@example.com"}, // a cycle
	})})
	start, end := t0, t0.Add(time.Hour)
	must := func(res string, p *iampb.Policy) {
		if _, err := e.srv.SetPolicy(res, p); err != nil {
			t.Fatalf("SetPolicy(%s): %v", res, err)
		}
	}
	must(project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
		condBinding("roles/compute.admin", jitCondition(start, end), "user:alice@example.com"),
		condBinding("roles/compute.viewer", cond("JIT access activation",
			`(request.time >= timestamp("2030-06-01T12:00:00Z") && request.time < timestamp("2030-06-01T13:00:00Z")) && resource.type == "cloudresourcemanager.googleapis.com/Project"`),
			"user:alice@example.com"),
		condBinding("roles/storage.admin", cond("JIT access activation",
			`(request.time >= timestamp("2030-06-01T12:00:00Z") && request.time < timestamp("2030-06-01T13:00:00Z")) && resource.type == "cloudresourcemanager.googleapis.com/Folder"`),
			"user:alice@example.com"),
		condBinding("roles/bigquery.admin", cond("eligible", `has({}.jitAccessConstraint)`), "user:bob@example.com"),
		condBinding("roles/bigquery.user", cond("eligible", `has({}.multiPartyApprovalConstraint)`), "user:bob@example.com"),
		condBinding("roles/pubsub.admin", cond("tagged", `resource.matchTag("123/env", "prod")`), "user:bob@example.com"),
		condBinding("roles/pubsub.viewer", cond("tagged or always", `resource.matchTag("123/env", "prod") || true`), "user:bob@example.com"),
		condBinding("roles/run.admin", cond("by number", `resource.name == "projects/1001"`), "user:bob@example.com"),
		binding("roles/browser", "group:admins@example.com"),
	}})
	must(folder, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/iam.securityReviewer", "domain:example.com")}})
	must(org, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/resourcemanager.organizationAdmin", "user:root@example.org")}})

	for _, tc := range []struct {
		name      string
		principal string
		role      string
		resource  string
		at        time.Time
		want      bool
	}{
		{"JIT window: before start", "user:alice@example.com", "roles/compute.admin", project, start.Add(-time.Second), false},
		{"JIT window: at start", "user:alice@example.com", "roles/compute.admin", project, start, true},
		{"JIT window: inside", "user:alice@example.com", "roles/compute.admin", project, start.Add(30 * time.Minute), true},
		{"JIT window: at end (exclusive)", "user:alice@example.com", "roles/compute.admin", project, end, false},
		{"JIT window: after end", "user:alice@example.com", "roles/compute.admin", project, end.Add(time.Hour), false},
		{"by project number", "user:alice@example.com", "roles/compute.admin", projectN, start, true},
		{"email case-insensitive", "user:Alice@Example.com", "roles/compute.admin", project, start, true},
		{"other user", "user:eve@example.com", "roles/compute.admin", project, start, false},
		{"other role", "user:alice@example.com", "roles/compute.networkAdmin", project, start, false},
		{"ANDed resource type matches", "user:alice@example.com", "roles/compute.viewer", project, start, true},
		{"ANDed resource type matches, outside window", "user:alice@example.com", "roles/compute.viewer", project, end, false},
		{"ANDed resource type does not match", "user:alice@example.com", "roles/storage.admin", project, start, false},
		{"eligibility marker jitAccessConstraint is false", "user:bob@example.com", "roles/bigquery.admin", project, start, false},
		{"eligibility marker multiPartyApprovalConstraint is false", "user:bob@example.com", "roles/bigquery.user", project, start, false},
		{"unevaluable condition is false", "user:bob@example.com", "roles/pubsub.admin", project, start, false},
		{"unevaluable OR true is true", "user:bob@example.com", "roles/pubsub.viewer", project, start, true},
		{"resource.name is projects/NUMBER", "user:bob@example.com", "roles/run.admin", project, start, true},
		{"through a group", "user:carol@example.com", "roles/browser", project, start, true},
		{"through a nested group with a cycle", "user:dave@example.com", "roles/browser", project, start, true},
		{"the group itself", "group:oncall@example.com", "roles/browser", project, start, true},
		{"not in the group", "user:eve@example.com", "roles/browser", project, start, false},
		{"domain, inherited from the folder", "user:eve@example.com", "roles/iam.securityReviewer", project, start, true},
		{"domain does not cover other domains", "user:eve@example.org", "roles/iam.securityReviewer", project, start, false},
		{"domain does not cover service accounts", "serviceAccount:s@p.iam.gserviceaccount.com", "roles/iam.securityReviewer", project, start, false},
		{"inherited from the organization", "user:root@example.org", "roles/resourcemanager.organizationAdmin", project, start, true},
		{"inherited by a subfolder", "user:root@example.org", "roles/resourcemanager.organizationAdmin", subfolder, start, true},
		{"not inherited upwards", "user:alice@example.com", "roles/compute.admin", folder, start, false},
		{"not inherited sideways", "user:root@example.org", "roles/resourcemanager.organizationAdmin", solo, start, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := e.srv.HasRole(t.Context(), tc.principal, tc.role, tc.resource, tc.at)
			if err != nil {
				t.Fatalf("HasRole: %v", err)
			}
			if got != tc.want {
				t.Errorf("HasRole(%s, %s, %s, %s) = %v, want %v", tc.principal, tc.role, tc.resource, tc.at.Format(time.RFC3339), got, tc.want)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		if _, err := e.srv.HasRole(t.Context(), "user:a@example.com", "roles/browser", "projects/unknown-project", t0); err == nil {
			t.Error("unknown resource: no error")
		}
		if _, err := e.srv.HasRole(t.Context(), "alice", "roles/browser", project, t0); err == nil {
			t.Error("malformed principal: no error")
		}
		must(solo, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "group:broken@example.com")}})
		if _, err := e.srv.HasRole(t.Context(), "user:a@example.com", "roles/browser", solo, t0); err == nil {
			t.Error("failing group resolver: no error")
		}
	})
}

// docs/google-cloud.md §2: GetIamPolicy needs resourcemanager.<kind>.getIamPolicy and
// SetIamPolicy needs ….setIamPolicy, checked on the effective policy with
// conditions evaluated now; missing → PERMISSION_DENIED.
func TestCallerPermissions(t *testing.T) {
	t.Parallel()
	const (
		grantSA  = "serviceAccount:grant@p.iam.gserviceaccount.com"
		folderSA = "serviceAccount:folders@p.iam.gserviceaccount.com"
		secAdmin = "serviceAccount:sec@p.iam.gserviceaccount.com"
		viewer   = "user:viewer@example.com"
		temp     = "user:temp@example.com"
		member   = "user:member@example.com"
		nobody   = "user:nobody@example.com"
	)
	e := newEnv(t, localiam.Config{Members: groups(map[string][]string{"iam-admins@example.com": {member}})})
	seed := map[string]*iampb.Policy{
		project: {Version: 3, Bindings: []*iampb.Binding{
			binding("roles/resourcemanager.projectIamAdmin", grantSA, "group:iam-admins@example.com"),
			condBinding("roles/resourcemanager.projectIamAdmin", jitCondition(t0, t0.Add(time.Hour)), temp),
		}},
		folder: {Bindings: []*iampb.Binding{binding("roles/resourcemanager.folderIamAdmin", folderSA)}},
		org: {Bindings: []*iampb.Binding{
			binding("roles/viewer", viewer),
			binding("roles/iam.securityAdmin", secAdmin),
		}},
	}
	for res, p := range seed {
		if _, err := e.srv.SetPolicy(res, p); err != nil {
			t.Fatalf("SetPolicy(%s): %v", res, err)
		}
	}
	type call struct {
		principal, resource string
		set                 bool
		want                codes.Code
	}
	check := func(t *testing.T, cs []call) {
		t.Helper()
		for _, c := range cs {
			cl := e.client(t, c.resource, c.principal)
			var err error
			if c.set {
				p := e.srv.Policy(c.resource)
				p.Etag = nil
				_, err = cl.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: c.resource, Policy: p})
			} else {
				_, err = cl.GetIamPolicy(t.Context(), &iampb.GetIamPolicyRequest{Resource: c.resource, Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}})
			}
			if got := codeOf(err); got != c.want {
				t.Errorf("%s set=%v on %s: code %v (%v), want %v", c.principal, c.set, c.resource, got, err, c.want)
			}
			if c.want == codes.PermissionDenied && err != nil && !strings.Contains(err.Error(), "Permission 'resourcemanager.") {
				t.Errorf("denial message %q does not name the permission", err)
			}
		}
	}
	check(t, []call{
		{"", project, true, codes.OK}, // the local operator may do anything
		{grantSA, project, false, codes.OK},
		{grantSA, project, true, codes.OK},
		{grantSA, projectN, true, codes.OK},
		{grantSA, folder, false, codes.PermissionDenied},
		{grantSA, solo, false, codes.PermissionDenied},
		{folderSA, folder, true, codes.OK},
		{folderSA, subfolder, true, codes.OK}, // inherited downwards
		{folderSA, project, false, codes.PermissionDenied},
		{folderSA, org, false, codes.PermissionDenied},
		{viewer, project, false, codes.OK},
		{viewer, org, false, codes.OK},
		{viewer, project, true, codes.PermissionDenied},
		{secAdmin, project, true, codes.OK},
		{secAdmin, org, true, codes.OK},
		{member, project, true, codes.OK}, // through the group
		{nobody, project, false, codes.PermissionDenied},
		{nobody, "projects/unknown-project", false, codes.PermissionDenied},
		{temp, project, true, codes.OK}, // inside the window at t0
		{"alice", project, false, codes.Unauthenticated},
	})
	e.clock.Set(t0.Add(time.Hour))
	check(t, []call{{temp, project, true, codes.PermissionDenied}}) // expired

	// WithPrincipal sets the identity per call, without an interceptor.
	pc, err := resourcemanager.NewProjectsClient(t.Context(), loopback.ClientOptions(e.addr)...)
	if err != nil {
		t.Fatalf("NewProjectsClient: %v", err)
	}
	defer pc.Close()
	if _, err := pc.GetIamPolicy(localiam.WithPrincipal(t.Context(), nobody), &iampb.GetIamPolicyRequest{Resource: project}); codeOf(err) != codes.PermissionDenied {
		t.Errorf("WithPrincipal(nobody): err = %v, want PermissionDenied", err)
	}
	if _, err := pc.GetIamPolicy(localiam.WithPrincipal(t.Context(), grantSA), &iampb.GetIamPolicyRequest{Resource: project}); err != nil {
		t.Errorf("WithPrincipal(grant SA): %v", err)
	}
	// The interceptor's identity wins over one on the context.
	nc := e.client(t, project, nobody)
	if _, err := nc.GetIamPolicy(localiam.WithPrincipal(t.Context(), grantSA), &iampb.GetIamPolicyRequest{Resource: project}); codeOf(err) != codes.PermissionDenied {
		t.Errorf("interceptor overridden by context: err = %v, want PermissionDenied", err)
	}
}

// docs/google-cloud.md §2: TestIamPermissions needs no permission and returns the
// subset of the requested permissions the caller holds.
func TestTestIamPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	if _, err := e.srv.SetPolicy(folder, &iampb.Policy{Bindings: []*iampb.Binding{
		binding("roles/resourcemanager.folderIamAdmin", "user:f@example.com"),
		binding("roles/browser", "user:b@example.com"),
	}}); err != nil {
		t.Fatal(err)
	}
	perms := []string{"resourcemanager.folders.get", "resourcemanager.folders.getIamPolicy", "resourcemanager.folders.setIamPolicy", "resourcemanager.folders.delete"}
	for _, tc := range []struct {
		principal, resource string
		want                []string
	}{
		{"", folder, perms},
		{"user:f@example.com", folder, perms[:3]},
		{"user:f@example.com", subfolder, perms[:3]},
		{"user:b@example.com", folder, perms[:1]},
		{"user:nobody@example.com", folder, nil},
	} {
		c := e.client(t, tc.resource, tc.principal)
		resp, err := c.TestIamPermissions(t.Context(), &iampb.TestIamPermissionsRequest{Resource: tc.resource, Permissions: perms})
		if err != nil {
			t.Fatalf("TestIamPermissions(%q): %v", tc.principal, err)
		}
		if diff := cmp.Diff(tc.want, resp.GetPermissions()); diff != "" {
			t.Errorf("TestIamPermissions(%q, %s) (-want, +got):\n%s", tc.principal, tc.resource, diff)
		}
	}
	c := e.client(t, folder, "")
	if _, err := c.TestIamPermissions(t.Context(), &iampb.TestIamPermissionsRequest{Resource: folder, Permissions: []string{"resourcemanager.*"}}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("wildcard permission: err = %v, want InvalidArgument", err)
	}
	oc := e.client(t, org, "user:nobody@example.com")
	resp, err := oc.TestIamPermissions(t.Context(), &iampb.TestIamPermissionsRequest{Resource: org, Permissions: []string{"resourcemanager.organizations.get"}})
	if err != nil || len(resp.GetPermissions()) != 0 {
		t.Errorf("organization, no grant: %v, %v; want no permissions", resp, err)
	}
}
