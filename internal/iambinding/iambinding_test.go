package iambinding

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// docs/architecture.md §3: a grant is a binding user × role with condition title "JIT
// access activation" and expression (request.time >= timestamp("START") &&
// request.time < timestamp("END")), AND-ed with the resource condition if
// any (docs/jit-access.md §4 gives the exact strings); written at policy
// version 3 (docs/google-cloud.md §1, policy.pb.go Policy.Version). The local IAM
// evaluates the condition: access inside the window, none before or after
// (END is exclusive).
func TestGrantWritesDesignBinding(t *testing.T) {
	t.Parallel()
	const window = `(request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T01:00:00Z"))`
	tests := []struct {
		name       string
		condition  string
		expression string
		inside     bool
	}{
		{"no resource condition", "", window, true},
		{
			"resource condition true on the project",
			`resource.type == "cloudresourcemanager.googleapis.com/Project"`,
			"(" + window + `) && (resource.type == "cloudresourcemanager.googleapis.com/Project")`,
			true,
		},
		{
			"resource condition false on the project",
			`resource.type == "cloudresourcemanager.googleapis.com/Folder"`,
			"(" + window + `) && (resource.type == "cloudresourcemanager.googleapis.com/Folder")`,
			false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			res, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", tc.condition, window1("g1")))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if res.Writes != 1 {
				t.Errorf("Writes = %d, want 1", res.Writes)
			}
			stored := e.srv.Policy(project)
			if stored.GetVersion() != 3 {
				t.Errorf("stored policy version = %d, want 3", stored.GetVersion())
			}
			want := []*iampb.Binding{binding(roleGranted,
				cond("JIT access activation", tc.expression, "Approved by boss@example.com, justification: g1"),
				"user:alice@example.com")}
			if diff := diffBindings(want, stored.GetBindings()); diff != "" {
				t.Errorf("stored bindings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(stored, res.Policies[project], protocmp.Transform()); diff != "" {
				t.Errorf("Result.Policies[%s] differs from the stored policy (-stored +result):\n%s", project, diff)
			}
			for _, at := range []struct {
				at   time.Time
				want bool
			}{
				{t0.Add(-time.Second), false},
				{t0, tc.inside},
				{t0.Add(time.Hour - time.Second), tc.inside},
				{t0.Add(time.Hour), false},
				{t0.Add(2 * time.Hour), false},
			} {
				if got := e.hasRole(t, "user:alice@example.com", roleGranted, project, at.at); got != at.want {
					t.Errorf("HasRole at %v = %v, want %v", at.at, got, at.want)
				}
			}
		})
	}
}

// window1 is the one-hour window [t0, t0+1h).
func window1(id string) Window { return window(id, 0, time.Hour) }

// docs/architecture.md §3: an idempotent re-apply costs one read and no
// write; removing (no windows) deletes the binding and the access. The
// member is matched the way IAM stores it, lower-cased (docs/google-cloud.md §1
// member forms), so a mixed-case member does not cause a write per apply.
func TestReapplyIsNoOpAndRemovalDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	grant := change(project, "user:Alice@Example.com", "", window1("g1"))
	if _, err := e.w.Apply(t.Context(), grant); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	gets, sets := e.recProjects.counts()

	res, err := e.w.Apply(t.Context(), grant)
	if err != nil {
		t.Fatalf("re-Apply: %v", err)
	}
	gets2, sets2 := e.recProjects.counts()
	if res.Writes != 0 || sets2 != sets || gets2 != gets+1 {
		t.Errorf("re-apply: Writes %d, SetIamPolicy calls +%d, GetIamPolicy calls +%d; want 0, +0, +1", res.Writes, sets2-sets, gets2-gets)
	}

	res, err = e.w.Apply(t.Context(), change(project, "user:alice@example.com", ""))
	if err != nil {
		t.Fatalf("Apply removal: %v", err)
	}
	if res.Writes != 1 {
		t.Errorf("removal Writes = %d, want 1", res.Writes)
	}
	if got := e.srv.Policy(project).GetBindings(); len(got) != 0 {
		t.Errorf("bindings after removal = %v, want none", got)
	}
	if e.hasRole(t, "user:alice@example.com", roleGranted, project, t0.Add(30*time.Minute)) {
		t.Error("HasRole inside the window after removal = true, want false")
	}
	res, err = e.w.Apply(t.Context(), change(project, "user:alice@example.com", ""))
	if err != nil || res.Writes != 0 {
		t.Errorf("removing again: Writes %d, err %v; want 0, nil", res.Writes, err)
	}
}

// Windows that have ended give no access: a change whose windows have all
// ended is a removal, and a binding spans only the windows still open, so
// no binding is written that the expiry purge (docs/google-cloud.md §1) would delete.
func TestEndedWindowsAreIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	res, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "", window("old", -2*time.Hour, -time.Hour)))
	if err != nil || res.Writes != 0 {
		t.Fatalf("Apply with an ended window: Writes %d, err %v; want 0, nil", res.Writes, err)
	}
	if _, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "",
		window("old", -2*time.Hour, -time.Hour), window("new", 10*time.Minute, time.Hour))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []*iampb.Binding{binding(roleGranted, cond("JIT access activation",
		`(request.time >= timestamp("2040-01-01T00:10:00Z") && request.time < timestamp("2040-01-01T01:00:00Z"))`,
		"Approved by boss@example.com, justification: new"), "user:alice@example.com")}
	if diff := diffBindings(want, e.srv.Policy(project).GetBindings()); diff != "" {
		t.Errorf("bindings (-want +got):\n%s", diff)
	}
}

// docs/architecture.md §3: "Overlapping grants of the same user+role must not cut each
// other short." The binding spans the union of the windows; ending grant B
// early keeps grant A's access until A's end.
func TestOverlappingGrantsDoNotCutEachOtherShort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const alice = "user:alice@example.com"
	a := window("A", 0, 2*time.Hour)
	b := window("B", 30*time.Minute, time.Hour)

	if _, err := e.w.Apply(t.Context(), change(project, alice, "", b)); err != nil {
		t.Fatalf("Apply B: %v", err)
	}
	if _, err := e.w.Apply(t.Context(), change(project, alice, "", b, a)); err != nil {
		t.Fatalf("Apply A+B: %v", err)
	}
	want := []*iampb.Binding{binding(roleGranted, cond("JIT access activation",
		`(request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T02:00:00Z"))`,
		"Approved by boss@example.com, justification: A; Approved by boss@example.com, justification: B"), alice)}
	if diff := diffBindings(want, e.srv.Policy(project).GetBindings()); diff != "" {
		t.Errorf("bindings with A and B (-want +got):\n%s", diff)
	}

	// B is revoked early: only A is left.
	if _, err := e.w.Apply(t.Context(), change(project, alice, "", a)); err != nil {
		t.Fatalf("Apply A: %v", err)
	}
	for _, at := range []struct {
		at   time.Time
		want bool
	}{
		{t0.Add(45 * time.Minute), true},          // inside B, which ended early: A still holds
		{t0.Add(90 * time.Minute), true},          // after B's end, inside A
		{t0.Add(2*time.Hour - time.Second), true}, // A's last second
		{t0.Add(2 * time.Hour), false},            // A's end
	} {
		if got := e.hasRole(t, alice, roleGranted, project, at.at); got != at.want {
			t.Errorf("HasRole at %v = %v, want %v", at.at, got, at.want)
		}
	}
	if got := e.srv.Policy(project).GetBindings(); len(got) != 1 {
		t.Errorf("bindings after ending B = %d, want 1 (never two activations of one key)", len(got))
	}
}

// docs/jit-access.md §4 purge rule: before adding, every temporary binding
// of the same user and role is removed, active or expired, whatever its
// title. Bindings of other members, of the same user with another
// resource condition (another key), and everything unrelated stay
// byte-for-byte.
func TestReplacesEarlierTemporaryBindingsOfTheKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const alice = "user:alice@example.com"
	bob := binding(roleGranted, cond("JIT access activation",
		`(request.time >= timestamp("2039-12-31T23:00:00Z") && request.time < timestamp("2040-01-01T03:00:00Z"))`, "bob's"), "user:bob@example.com")
	seeded := append(unrelated(),
		bob,
		// Active, another title: still a temporary binding of the key.
		binding(roleGranted, cond("temporary access",
			`request.time >= timestamp("2039-12-31T23:00:00Z") && request.time < timestamp("2040-01-01T03:00:00Z")`, ""), alice),
		// Not yet started, activation title.
		binding(roleGranted, cond("JIT access activation",
			`(request.time >= timestamp("2040-01-02T00:00:00Z") && request.time < timestamp("2040-01-02T01:00:00Z"))`, "later"), alice),
	)
	before := e.seed(t, project, seeded...)

	if _, err := e.w.Apply(t.Context(), change(project, alice, "", window1("g1"))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := e.srv.Policy(project)
	wantAlice := binding(roleGranted, cond("JIT access activation",
		`(request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T01:00:00Z"))`,
		"Approved by boss@example.com, justification: g1"), alice)
	isKeyOfAlice := func(b *iampb.Binding) bool {
		return b.GetRole() == roleGranted && len(b.GetMembers()) == 1 && b.GetMembers()[0] == alice &&
			strings.Contains(b.GetCondition().GetExpression(), "request.time >=") &&
			!strings.Contains(b.GetCondition().GetExpression(), "resource.type")
	}
	if diff := diffBindings([]*iampb.Binding{wantAlice}, bindingsWithout(after, func(b *iampb.Binding) bool { return !isKeyOfAlice(b) })); diff != "" {
		t.Errorf("alice's temporary bindings without resource condition (-want +got):\n%s", diff)
	}
	if diff := diffBindings(bindingsWithout(before, isKeyOfAlice), bindingsWithout(after, isKeyOfAlice)); diff != "" {
		t.Errorf("other bindings changed (-before +after):\n%s", diff)
	}
}

// docs/google-cloud.md §1 "Temporary access, expiry and propagation": expired
// conditional bindings are never removed by IAM and count against the
// 1,500-principal limit; docs/architecture.md §3: "on every write, purge expired JIT
// bindings of anyone". Only activations (title "JIT access activation",
// window ended) go; unconditional bindings, other conditions, eligibility
// markers (docs/jit-access.md §1.1), an expired binding with another title
// and active activations stay byte-for-byte. A change that needs no write
// does not write just to purge.
func TestWritePurgesExpiredActivationsOfAnyoneAndNothingElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	expired := []*iampb.Binding{
		binding("roles/storage.admin", cond("JIT access activation",
			`(request.time >= timestamp("2039-12-31T22:00:00Z") && request.time < timestamp("2039-12-31T23:00:00Z"))`, "bob's"), "user:bob@example.com"),
		binding("roles/compute.viewer", cond("JIT access activation",
			`((request.time >= timestamp("2039-12-30T00:00:00Z") && request.time < timestamp("2040-01-01T00:00:00Z"))) && (resource.type == "cloudresourcemanager.googleapis.com/Project")`, ""), "group:ops@example.com", "user:erin@example.com"),
	}
	kept := append(unrelated(),
		binding("roles/storage.admin", cond("JIT access activation",
			`(request.time >= timestamp("2039-12-31T23:00:00Z") && request.time < timestamp("2040-01-01T00:00:01Z"))`, "carol's, still active"), "user:carol@example.com"),
		binding("roles/storage.admin", cond("temporary access",
			`request.time >= timestamp("2039-12-31T22:00:00Z") && request.time < timestamp("2039-12-31T23:00:00Z")`, "expired, not ours"), "user:dave@example.com"),
	)
	before := e.seed(t, project, append(kept, expired...)...)
	isExpired := func(b *iampb.Binding) bool {
		for _, x := range expired {
			if proto.Equal(b.GetCondition(), x.GetCondition()) && b.GetRole() == x.GetRole() {
				return true
			}
		}
		return false
	}

	// An already-satisfied change reads and stops: no write, nothing purged.
	if res, err := e.w.Apply(t.Context(), change(project, "user:zed@example.com", "")); err != nil || res.Writes != 0 {
		t.Fatalf("no-op Apply: Writes %d, err %v; want 0, nil", res.Writes, err)
	}
	if diff := cmp.Diff(before, e.srv.Policy(project), protocmp.Transform()); diff != "" {
		t.Fatalf("a no-op Apply changed the policy (-before +after):\n%s", diff)
	}

	res, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "", window1("g1")))
	if err != nil || res.Writes != 1 {
		t.Fatalf("Apply: Writes %d, err %v; want 1, nil", res.Writes, err)
	}
	after := e.srv.Policy(project)
	isNew := func(b *iampb.Binding) bool {
		return strings.Contains(b.GetCondition().GetDescription(), "justification: g1")
	}
	if diff := diffBindings(bindingsWithout(before, isExpired), bindingsWithout(after, isNew)); diff != "" {
		t.Errorf("bindings other than the expired ones and the new one (-before +after):\n%s", diff)
	}
	if got := bindingsWithout(after, func(b *iampb.Binding) bool { return !isExpired(b) }); len(got) != 0 {
		t.Errorf("expired activations left after a write: %v", got)
	}
	if !e.hasRole(t, "user:carol@example.com", "roles/storage.admin", project, t0) {
		t.Error("carol's active activation no longer grants access")
	}
}

// The sweep's janitor (docs/architecture.md §2, revoke: "purges expired bindings"):
// Purge writes only when there is something expired to remove.
func TestPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	base := e.seed(t, project, unrelated()...)
	e.seed(t, project, append(unrelated(), binding("roles/storage.admin", cond("JIT access activation",
		`(request.time >= timestamp("2039-12-31T22:00:00Z") && request.time < timestamp("2039-12-31T23:00:00Z"))`, ""), "user:bob@example.com"))...)
	res, err := e.w.Purge(t.Context(), project)
	if err != nil || res.Writes != 1 {
		t.Fatalf("Purge: Writes %d, err %v; want 1, nil", res.Writes, err)
	}
	if diff := diffBindings(base.GetBindings(), e.srv.Policy(project).GetBindings()); diff != "" {
		t.Errorf("bindings after Purge, want exactly the unrelated ones (-want +got):\n%s", diff)
	}
	if res, err := e.w.Purge(t.Context(), project); err != nil || res.Writes != 0 {
		t.Errorf("second Purge: Writes %d, err %v; want 0, nil", res.Writes, err)
	}
}

// docs/google-cloud.md §1 "etag and read-modify-write": a concurrent change makes the
// stale write fail with ABORTED, "Please retry the whole read-modify-write
// with exponential backoff"; the Go clients do not retry it. A foreign
// writer commits between the writer's read and write: the writer's first
// write is refused, the retry re-reads and keeps the foreign binding.
func TestForeignWriterCausesAbortedAndIsNotLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.seed(t, project, unrelated()...)
	e.recProjects.afterGet = func(n int, resource string) {
		if n != 1 {
			return
		}
		done := make(chan error)
		go func() {
			done <- foreignAdd(e, resource, binding("roles/iam.securityReviewer", nil, "user:foreign@example.com"))
		}()
		if err := <-done; err != nil {
			t.Errorf("foreign writer: %v", err)
		}
	}
	res, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "", window1("g1")))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := e.srv.AbortedCount(); got != 1 {
		t.Errorf("AbortedCount = %d, want 1", got)
	}
	if res.Writes != 2 {
		t.Errorf("Writes = %d, want 2 (one refused, one retried)", res.Writes)
	}
	if !e.hasRole(t, "user:foreign@example.com", "roles/iam.securityReviewer", project, t0) {
		t.Error("the foreign write was lost")
	}
	if !e.hasRole(t, "user:alice@example.com", roleGranted, project, t0) {
		t.Error("alice's grant is missing")
	}
}

// foreignAdd is another administrator's own read-modify-write, through the
// real client and not through the writer.
func foreignAdd(e *env, resource string, b *iampb.Binding) error {
	ctx := context.Background()
	p, err := e.projects.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: resource, Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}})
	if err != nil {
		return err
	}
	p.Version = 3
	p.Bindings = append(p.Bindings, b)
	_, err = e.projects.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: resource, Policy: p})
	return err
}

// The retry loop is bounded: with a foreign write between every read and
// write, Apply gives up after MaxAttempts and reports ABORTED.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 3 })
	e.recProjects.afterGet = func(n int, resource string) {
		if err := foreignAdd(e, resource, binding("roles/browser", nil, fmt.Sprintf("user:f%d@example.com", n))); err != nil {
			t.Errorf("foreign writer: %v", err)
		}
	}
	res, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "", window1("g1")))
	if status.Code(err) != codes.Aborted {
		t.Fatalf("Apply error = %v, want code Aborted", err)
	}
	gets, sets := e.recProjects.counts()
	if gets != 3 || sets != 3 || res.Writes != 3 {
		t.Errorf("reads %d, writes %d, Result.Writes %d; want 3, 3, 3", gets, sets, res.Writes)
	}
}

// docs/google-cloud.md §1: ABORTED, UNAVAILABLE and RESOURCE_EXHAUSTED (the
// Resource Manager quota) restart the read-modify-write; no other error is
// retried (SetIamPolicy has no retry in the client, docs/google-cloud.md §1
// "How clients retry").
func TestRetriesOnlyConflictsOutagesAndQuota(t *testing.T) {
	t.Parallel()
	once := func(c codes.Code) func(int) error {
		return func(n int) error {
			if n == 1 {
				return status.Error(c, "injected")
			}
			return nil
		}
	}
	tests := []struct {
		name               string
		getErr, setErr     func(int) error
		wantCode           codes.Code
		wantGets, wantSets int
	}{
		{"read unavailable once", once(codes.Unavailable), nil, codes.OK, 2, 1},
		{"write unavailable once", nil, once(codes.Unavailable), codes.OK, 2, 2},
		{"write aborted once", nil, once(codes.Aborted), codes.OK, 2, 2},
		{"read quota exhausted once", once(codes.ResourceExhausted), nil, codes.OK, 2, 1},
		{"write quota exhausted once", nil, once(codes.ResourceExhausted), codes.OK, 2, 2},
		{"read permission denied", once(codes.PermissionDenied), nil, codes.PermissionDenied, 1, 0},
		{"write permission denied", nil, once(codes.PermissionDenied), codes.PermissionDenied, 1, 1},
		{"write invalid argument", nil, once(codes.InvalidArgument), codes.InvalidArgument, 1, 1},
		{"write deadline exceeded", nil, once(codes.DeadlineExceeded), codes.DeadlineExceeded, 1, 1},
		{"write failed precondition", nil, once(codes.FailedPrecondition), codes.FailedPrecondition, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.recProjects.getErr, e.recProjects.setErr = tc.getErr, tc.setErr
			_, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "", window1("g1")))
			if got := status.Code(err); got != tc.wantCode {
				t.Errorf("Apply error = %v, want code %v", err, tc.wantCode)
			}
			gets, sets := e.recProjects.counts()
			if gets != tc.wantGets || sets != tc.wantSets {
				t.Errorf("reads %d, writes %d; want %d, %d", gets, sets, tc.wantGets, tc.wantSets)
			}
			if got := e.hasRole(t, "user:alice@example.com", roleGranted, project, t0); got != (tc.wantCode == codes.OK) {
				t.Errorf("HasRole = %v, want %v", got, tc.wantCode == codes.OK)
			}
		})
	}
}

// docs/google-cloud.md §2: a project that does not exist is PERMISSION_DENIED on
// read, and nothing is retried or written.
func TestUnknownProjectIsPermissionDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, err := e.w.Apply(t.Context(), change("projects/no-such-project", "user:alice@example.com", "", window1("g1")))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Apply error = %v, want PermissionDenied", err)
	}
	if gets, sets := e.recProjects.counts(); gets != 1 || sets != 0 {
		t.Errorf("reads %d, writes %d; want 1, 0", gets, sets)
	}
}

// Folders and organizations are written through their own clients, and
// the access is inherited by the project below (docs/google-cloud.md §2 resource
// names; docs/architecture.md §4 privileges on projects/folders/organizations).
func TestFoldersAndOrganizations(t *testing.T) {
	t.Parallel()
	for _, resource := range []string{folder, org} {
		t.Run(resource, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			rec := map[string]*recorder{folder: e.recFolders, org: e.recOrganizations}[resource]
			const alice = "user:alice@example.com"
			if _, err := e.w.Apply(t.Context(), change(resource, alice, "", window1("g1"))); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if _, sets := rec.counts(); sets != 1 {
				t.Errorf("writes through the %s client = %d, want 1", resource, sets)
			}
			if p := e.srv.Policy(resource); p.GetVersion() != 3 || len(p.GetBindings()) != 1 {
				t.Errorf("policy of %s = %v, want version 3 with one binding", resource, p)
			}
			for _, r := range []string{resource, project} {
				if !e.hasRole(t, alice, roleGranted, r, t0.Add(time.Minute)) {
					t.Errorf("HasRole on %s inside the window = false, want true", r)
				}
			}
			if _, err := e.w.Apply(t.Context(), change(resource, alice, "")); err != nil {
				t.Fatalf("Apply removal: %v", err)
			}
			if e.hasRole(t, alice, roleGranted, project, t0.Add(time.Minute)) {
				t.Error("HasRole on the project after removal = true, want false")
			}
		})
	}
}

// IAM merges bindings with the same role and condition into one binding
// with several members (docs/google-cloud.md §1: a binding is role, members,
// condition). Two users with identical windows and descriptions end up in
// one binding; removing one must keep the other.
func TestIdenticalConditionsShareABinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	w := Window{Start: t0, End: t0.Add(time.Hour), Description: "Self-approved, justification: incident 42"}
	if _, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "", w), change(project, "user:bob@example.com", "", w)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	bs := e.srv.Policy(project).GetBindings()
	if len(bs) != 1 || len(bs[0].GetMembers()) != 2 {
		t.Fatalf("bindings = %v, want one binding with both users", bs)
	}
	if res, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "", w)); err != nil || res.Writes != 0 {
		t.Errorf("re-apply for alice: Writes %d, err %v; want 0, nil", res.Writes, err)
	}
	if _, err := e.w.Apply(t.Context(), change(project, "user:alice@example.com", "")); err != nil {
		t.Fatalf("Apply removal: %v", err)
	}
	if e.hasRole(t, "user:alice@example.com", roleGranted, project, t0) {
		t.Error("alice still has the role")
	}
	if !e.hasRole(t, "user:bob@example.com", roleGranted, project, t0) {
		t.Error("removing alice removed bob's access")
	}
}

// Verify is the "revocation verified" record (docs/architecture.md §3: revoke "reads the
// policy back"): it compares the policy read back with what Apply would
// write, and reports tampering.
func TestVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const alice = "user:alice@example.com"
	grant := change(project, alice, "", window1("g1"))
	revoke := change(project, alice, "")

	verify := func(c Change) Check {
		t.Helper()
		checks, err := e.w.Verify(t.Context(), c)
		if err != nil || len(checks) != 1 {
			t.Fatalf("Verify: %v, %d checks", err, len(checks))
		}
		return checks[0]
	}

	if c := verify(grant); c.Verified || c.Problem != "the binding is missing" {
		t.Errorf("before Apply: %+v, want not verified, missing", c)
	}
	if _, err := e.w.Apply(t.Context(), grant); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	c := verify(grant)
	if !c.Verified || len(c.Found) != 1 || !proto.Equal(c.Found[0], c.Want) || !c.At.Equal(t0) {
		t.Errorf("after Apply: %+v, want verified with the wanted condition", c)
	}
	// Someone adds a second temporary binding of the key.
	if err := foreignAdd(e, project, binding(roleGranted, cond("break glass",
		`request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-03T00:00:00Z")`, ""), alice)); err != nil {
		t.Fatal(err)
	}
	if c := verify(grant); c.Verified || len(c.Found) != 2 {
		t.Errorf("with a second binding: %+v, want not verified with 2 found", c)
	}
	if c := verify(revoke); c.Verified || c.Want != nil {
		t.Errorf("revocation before removal: %+v, want not verified", c)
	}
	if _, err := e.w.Apply(t.Context(), revoke); err != nil {
		t.Fatalf("Apply removal: %v", err)
	}
	if c := verify(revoke); !c.Verified || len(c.Found) != 0 {
		t.Errorf("revocation after removal: %+v, want verified", c)
	}
	if e.hasRole(t, alice, roleGranted, project, t0.Add(24*time.Hour)) {
		t.Error("the foreign temporary binding of the key survived the removal")
	}
}

// A caller that has given up is not written for.
func TestCancelledCallerIsNotWritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.w.Apply(ctx, change(project, "user:alice@example.com", "", window1("g1")))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply error = %v, want context.Canceled", err)
	}
	// The drain goroutine may still be running: wait for the queue to empty.
	waitIdle(t, e.w)
	if gets, sets := e.recProjects.counts(); gets != 0 || sets != 0 {
		t.Errorf("reads %d, writes %d; want 0, 0", gets, sets)
	}
}

// waitIdle waits until no resource has a drain loop running.
func waitIdle(t *testing.T, w *Writer) {
	t.Helper()
	for range 2000 {
		w.mu.Lock()
		n := len(w.queues)
		w.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the writer did not go idle")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	var c Config
	c.MaxAttempts = -1
	c.Backoff.Initial = time.Second
	c.Backoff.Max = time.Millisecond
	c.Backoff.Multiplier = 0.5
	err := c.Validate()
	for _, want := range []string{"at least one of Projects", "MaxAttempts -1", "must not exceed Backoff.Max", "Multiplier 0.5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := New(c); err == nil {
		t.Error("New accepted an invalid config")
	}
}

// Changes are validated before any RPC, every problem reported at once.
func TestApplyValidatesChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Organizations = nil })
	ok := window1("g1")
	manyOps := strings.Repeat("resource.name != 'x' && ", 11) + "true"
	changes := []Change{
		change("projects", "user:a@example.com", "", ok),
		change("buckets/b", "user:a@example.com", "", ok),
		{Key: Key{Resource: project, Role: "", Member: "user:a@example.com"}},
		{Key: Key{Resource: project, Role: "roles/compute.admin_withcond_0123", Member: "user:a@example.com"}},
		change(project, "alice@example.com", "", ok),
		change(project, "allUsers", "", ok),
		change(project, "user:b@example.com", "", Window{Start: t0, End: t0}),
		change(project, "user:c@example.com", `request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-02T00:00:00Z")`, ok),
		change(project, "user:d@example.com", `resource.name ==`, ok),
		change(project, "user:e@example.com", manyOps, ok),
		change(project, "user:f@example.com", "", ok),
		change(project, "user:F@example.com", "", ok),
		change(org, "user:g@example.com", "", ok),
	}
	_, err := e.w.Apply(t.Context(), changes...)
	if err == nil {
		t.Fatal("Apply accepted invalid changes")
	}
	for _, want := range []string{
		`change 0 `, `resource "projects" is not`,
		`change 1 `, `resource "buckets/b" is not`,
		`change 2 `, "Role is required",
		`change 3 `, "version-1 rendering",
		`change 4 `, `member "alice@example.com" is not`,
		`change 5 `, `member "allUsers" is not`,
		`change 6 `, "not after its start",
		`change 7 `, "must not hold a time window",
		`change 8 `, "is not a valid CEL condition",
		`change 9 `, "logical operators",
		`change 11 `, "the same key appears twice",
		`change 12 `, "no IAM client is configured for organizations",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "change 10 ") {
		t.Errorf("the valid change 10 was reported: %v", err)
	}
	if gets, sets := e.recProjects.counts(); gets != 0 || sets != 0 {
		t.Errorf("reads %d, writes %d before validation passed; want 0, 0", gets, sets)
	}
}

// The condition description is the grants' descriptions in order of
// start, each once, at most 256 bytes, cut on a rune boundary.
func TestDescription(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 40) // 80 bytes
	var ws []Window
	for i := 5; i >= 0; i-- {
		ws = append(ws, Window{Start: t0.Add(time.Duration(i) * time.Minute), End: t0.Add(time.Hour), Description: fmt.Sprintf("%d %s", i, long)})
	}
	got := description(ws)
	if len(got) > MaxDescription || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "0 é") {
		t.Errorf("description = %q (%d bytes), want ≤ %d bytes of valid UTF-8 starting with the earliest grant and ending in ...", got, len(got), MaxDescription)
	}
	short := []Window{
		{Start: t0.Add(time.Minute), End: t0.Add(time.Hour), Description: "b"},
		{Start: t0, End: t0.Add(time.Hour), Description: "a"},
		{Start: t0.Add(2 * time.Minute), End: t0.Add(time.Hour), Description: "a"},
		{Start: t0.Add(3 * time.Minute), End: t0.Add(time.Hour)},
	}
	if got := description(short); got != "a; b" {
		t.Errorf("description = %q, want %q", got, "a; b")
	}
}
