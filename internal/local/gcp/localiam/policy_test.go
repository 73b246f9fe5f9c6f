package localiam_test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/google/go-cmp/cmp"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

var (
	condA = &expr.Expr{Title: "expires", Expression: `request.time < timestamp("2031-01-01T00:00:00Z")`}
	condB = &expr.Expr{Title: "other", Expression: `request.time < timestamp("2032-01-01T00:00:00Z")`}
)

var withCond = regexp.MustCompile(`^(roles/[a-zA-Z.]+)_withcond_([0-9a-f]{20})$`)

// docs/google-cloud.md §1 "Reading a conditional policy at version < 3" and
// GetPolicyOptions.requested_policy_version (options.pb.go): below 3,
// conditional bindings come back without condition, renamed
// <role>_withcond_<hash>, version 1; at 3 they come back intact, version 3; a
// policy without conditions is version 1 whatever was requested.
func TestGetIamPolicyVersions(t *testing.T) {
	t.Parallel()
	for _, res := range []string{project, folder, org} {
		t.Run(res, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, localiam.Config{})
			c := e.client(t, res, "")
			set(t, c, res, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
				binding("roles/browser", "user:a@example.com"),
				condBinding("roles/iam.securityReviewer", condA, "user:b@example.com"),
				condBinding("roles/iam.securityReviewer", condB, "user:c@example.com"),
			}})

			v3 := get(t, c, res, 3)
			if v3.GetVersion() != 3 {
				t.Errorf("v3 read: version = %d, want 3", v3.GetVersion())
			}
			wantV3 := []*iampb.Binding{
				binding("roles/browser", "user:a@example.com"),
				condBinding("roles/iam.securityReviewer", condA, "user:b@example.com"),
				condBinding("roles/iam.securityReviewer", condB, "user:c@example.com"),
			}
			if diff := cmp.Diff(wantV3, v3.GetBindings(), protocmp.Transform()); diff != "" {
				t.Errorf("v3 bindings (-want, +got):\n%s", diff)
			}

			for _, v := range []int32{0, 1} {
				p := get(t, c, res, v)
				if p.GetVersion() != 1 {
					t.Errorf("v%d read: version = %d, want 1", v, p.GetVersion())
				}
				if len(p.GetBindings()) != 3 {
					t.Fatalf("v%d read: %d bindings, want 3", v, len(p.GetBindings()))
				}
				if diff := cmp.Diff(binding("roles/browser", "user:a@example.com"), p.GetBindings()[0], protocmp.Transform()); diff != "" {
					t.Errorf("v%d unconditional binding (-want, +got):\n%s", v, diff)
				}
				hashes := map[string]bool{}
				for _, b := range p.GetBindings()[1:] {
					m := withCond.FindStringSubmatch(b.GetRole())
					if m == nil || m[1] != "roles/iam.securityReviewer" {
						t.Errorf("v%d read: role %q, want roles/iam.securityReviewer_withcond_<20 hex>", v, b.GetRole())
						continue
					}
					if b.GetCondition() != nil {
						t.Errorf("v%d read: %s still has its condition", v, b.GetRole())
					}
					hashes[m[2]] = true
				}
				if len(hashes) != 2 {
					t.Errorf("v%d read: different conditions share a hash: %v", v, hashes)
				}
			}
			// The hash is deterministic.
			if a, b := get(t, c, res, 1), get(t, c, res, 1); !cmp.Equal(a, b, protocmp.Transform()) {
				t.Errorf("two v1 reads differ:\n%v\n%v", a, b)
			}
		})
	}
}

// docs/google-cloud.md §1: a policy without conditions comes back as version 1 even
// when 3 is requested; only 0, 1 and 3 may be requested (options.pb.go).
func TestGetIamPolicyUnconditionalAndInvalidVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	c := e.client(t, folder, "")
	set(t, c, folder, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com")}})
	if got := get(t, c, folder, 3).GetVersion(); got != 1 {
		t.Errorf("version = %d, want 1", got)
	}
	for _, v := range []int32{2, 4, -1} {
		_, err := c.GetIamPolicy(t.Context(), &iampb.GetIamPolicyRequest{Resource: folder, Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: v}})
		if got := codeOf(err); got != codes.InvalidArgument {
			t.Errorf("requested version %d: code %v (%v), want InvalidArgument", v, got, err)
		}
	}
}

func manyMembers(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d@example.com", prefix, i)
	}
	return out
}

func manyDomains(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("domain:d%d.example.com", i)
	}
	return out
}

func cond(title, expression string) *expr.Expr {
	return &expr.Expr{Title: title, Expression: expression}
}

// Every SetIamPolicy rule, one fresh server per case. Facts are cited per case.
func TestSetIamPolicyRules(t *testing.T) {
	t.Parallel()
	window := `request.time >= timestamp("2030-01-01T00:00:00Z") && request.time < timestamp("2030-01-02T00:00:00Z")`
	ops13 := strings.Repeat(`request.time < timestamp("2031-01-01T00:00:00Z") && `, 13) + "true"
	ops12 := strings.Repeat(`request.time < timestamp("2031-01-01T00:00:00Z") && `, 12) + "true"
	sameRoleMember := func(n int) []*iampb.Binding {
		var bs []*iampb.Binding
		for i := range n {
			bs = append(bs, condBinding("roles/browser", cond(fmt.Sprintf("c%d", i), fmt.Sprintf(`request.time < timestamp("20%02d-01-01T00:00:00Z")`, 40+i)), "user:a@example.com"))
		}
		return bs
	}
	cases := []struct {
		name     string
		fact     string
		resource string
		policy   *iampb.Policy
		wantCode codes.Code
		wantMsg  string
	}{
		{"version 2", "§1 version 0, 1 or 3", project, &iampb.Policy{Version: 2, Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com")}}, codes.InvalidArgument, "version"},
		{"version 0 unconditional", "§1 any valid version without conditions", project, &iampb.Policy{Version: 0, Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com")}}, codes.OK, ""},
		{"condition needs version 3 (v1)", "§1 adding a conditional binding needs v3", project, &iampb.Policy{Version: 1, Bindings: []*iampb.Binding{condBinding("roles/browser", condA, "user:a@example.com")}}, codes.InvalidArgument, "version 3"},
		{"condition needs version 3 (v0)", "§1", folder, &iampb.Policy{Bindings: []*iampb.Binding{condBinding("roles/browser", condA, "user:a@example.com")}}, codes.InvalidArgument, "version 3"},
		{"withcond role refused", "§1 writing back a v1 read corrupts the policy", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{binding("roles/browser_withcond_0123456789abcdef0123", "user:a@example.com")}}, codes.InvalidArgument, "roles/browser_withcond_"},
		{"binding without members", "§1 every binding needs a principal", org, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser")}}, codes.InvalidArgument, "no members"},
		{"member without type", "§1 member forms", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "alice@example.com")}}, codes.InvalidArgument, `of the form "<type>:<value>"`},
		{"user not an email", "§1 member forms", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "user:alice")}}, codes.InvalidArgument, "user:alice"},
		{"unknown member type", "§1 member forms", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "robot:r2@example.com")}}, codes.InvalidArgument, "robot:"},
		{"serviceAccount outside gserviceaccount.com", "§1 member forms", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "serviceAccount:sa@example.com")}}, codes.InvalidArgument, "service account"},
		{"deleted member accepted", "§1 deleted:user:{email}?uid={id}", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "deleted:user:gone@example.com?uid=123", "domain:example.com", "group:g@example.com", "serviceAccount:s@p.iam.gserviceaccount.com")}}, codes.OK, ""},
		{"deleted member without uid", "§1 deleted forms", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "deleted:user:gone@example.com")}}, codes.InvalidArgument, "deleted:"},
		{"allUsers on project", "§2 Projects do not support allUsers", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "allUsers")}}, codes.InvalidArgument, "allUsers"},
		{"allAuthenticatedUsers on project", "§2", solo, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "allAuthenticatedUsers")}}, codes.InvalidArgument, "allAuthenticatedUsers"},
		{"allAuthenticatedUsers on folder", "§2 the restriction is for Projects", folder, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "allAuthenticatedUsers")}}, codes.OK, ""},
		{"malformed role", "§2 roles are roles/… or custom", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("owner", "user:a@example.com")}}, codes.InvalidArgument, "owner"},
		{"condition without title", "§1 title is required", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("", window), "user:a@example.com")}}, codes.InvalidArgument, "title"},
		{"condition without expression", "§1 expression is required", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t", ""), "user:a@example.com")}}, codes.InvalidArgument, "expression"},
		{"condition on roles/owner", "§1 no conditions on basic roles", folder, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/owner", condA, "serviceAccount:s@p.iam.gserviceaccount.com")}}, codes.InvalidArgument, "roles/owner"},
		{"condition on roles/editor", "§1", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/editor", condA, "user:a@example.com")}}, codes.InvalidArgument, "roles/editor"},
		{"condition on roles/viewer", "§1", org, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/viewer", condA, "user:a@example.com")}}, codes.InvalidArgument, "roles/viewer"},
		{"condition with allUsers", "§1 no conditions with allUsers", folder, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", condA, "allUsers")}}, codes.InvalidArgument, "allUsers"},
		{"condition with allAuthenticatedUsers", "§1", org, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", condA, "allAuthenticatedUsers")}}, codes.InvalidArgument, "allAuthenticatedUsers"},
		{"13 logical operators", "§1 Limits: 12 logic operators", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t", ops13), "user:a@example.com")}}, codes.InvalidArgument, "13 logical operators"},
		{"12 logical operators", "§1 Limits", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t", ops12), "user:a@example.com")}}, codes.OK, ""},
		{"operators inside strings do not count", "§1 Limits count operators, not text", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t", `resource.name != "&&||!!&&||!!&&||!!&&||!!&&||!!&&||!!"`), "user:a@example.com")}}, codes.OK, ""},
		{"expression does not parse", "§1 CEL subset", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/iam.securityReviewer", cond("t", `request.time <`), "user:a@example.com")}}, codes.InvalidArgument, "roles/iam.securityReviewer"},
		{"expression does not type-check", "§1 CEL subset", folder, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t", `request.time < 3`), "user:a@example.com")}}, codes.InvalidArgument, "roles/browser"},
		{"unknown attribute", "§1 IAM condition attributes only", org, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t", `request.user == "x"`), "user:a@example.com")}}, codes.InvalidArgument, "roles/browser"},
		{"expression not boolean", "§1 a condition is a boolean expression", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t", `"yes"`), "user:a@example.com")}}, codes.InvalidArgument, "bool"},
		{"JIT self-approval marker", "docs/architecture.md §4 has({}.jitAccessConstraint)", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("JIT access eligible", `has({}.jitAccessConstraint)`), "user:a@example.com")}}, codes.OK, ""},
		{"JIT peer-approval marker", "docs/architecture.md §4 has({}.multiPartyApprovalConstraint)", folder, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("MPA eligible", `has({}.multiPartyApprovalConstraint)`), "group:g@example.com")}}, codes.OK, ""},
		{"JIT window ANDed with resource condition", "docs/architecture.md §3 grant format", project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("JIT access activation", `(`+window+`) && (resource.type == "cloudresourcemanager.googleapis.com/Project" && resource.name.startsWith("projects/"))`), "user:a@example.com")}}, codes.OK, ""},
		{"IAM functions and attributes", "§1 CEL subset with IAM functions", org, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{condBinding("roles/browser", cond("t",
			`resource.matchTag("123/env", "prod") || resource.hasTagKey("123/env") || api.getAttribute("iam.googleapis.com/modifiedGrantsByRole", []).hasOnly(["roles/browser"]) || resource.name.extract("projects/{id}/") == "x" || request.time.getHours("Europe/Berlin") > 8 || request.time.getDayOfWeek() == 1 || resource.service == "cloudresourcemanager.googleapis.com" || resource.name.endsWith("1") || resource.name.matches("^organizations/[0-9]+$") || request.time - timestamp("2030-01-01T00:00:00Z") < duration("3600s")`), "user:a@example.com")}}, codes.OK, ""},
		{"user made project owner", "§2 a user cannot be granted roles/owner through setIamPolicy", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/owner", "user:a@example.com")}}, codes.InvalidArgument, "SOLO_MUST_INVITE_OWNERS"},
		{"service account made project owner", "§2 service accounts can be made owners", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/owner", "serviceAccount:s@p.iam.gserviceaccount.com")}}, codes.OK, ""},
		{"user made folder owner", "§2 the restriction is for Projects", folder, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/owner", "user:a@example.com")}}, codes.OK, ""},
		{"1,500 principals", "§1 Limits: 1,500 principals", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", prefixAll("user:", manyMembers("u", 1500))...)}}, codes.OK, ""},
		{"1,501 principals", "§1 Limits; real text kubeflow/pipelines#1146", project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", prefixAll("user:", manyMembers("u", 1501))...)}}, codes.InvalidArgument, "The number of members in the policy (1,501) is larger than the maximum allowed size 1,500."},
		{"principals counted per occurrence", "§1 Limits: each occurrence counts", folder, &iampb.Policy{Bindings: []*iampb.Binding{
			binding("roles/browser", prefixAll("user:", manyMembers("u", 751))...),
			binding("roles/iam.securityReviewer", prefixAll("user:", manyMembers("u", 751))...),
		}}, codes.InvalidArgument, "(1,502)"},
		{"250 groups", "§1 Limits: 250 domains and groups", org, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", prefixAll("group:", manyMembers("g", 250))...)}}, codes.OK, ""},
		{"251 groups", "§1 Limits", org, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", prefixAll("group:", manyMembers("g", 251))...)}}, codes.InvalidArgument, "(251)"},
		{"a group counts once", "§1 Limits: a unique group counts once", org, &iampb.Policy{Bindings: []*iampb.Binding{
			binding("roles/browser", prefixAll("group:", manyMembers("g", 250))...),
			binding("roles/iam.securityReviewer", prefixAll("group:", manyMembers("g", 250))...),
		}}, codes.OK, ""},
		{"domains count every appearance", "§1 Limits: domains count every appearance", folder, &iampb.Policy{Bindings: []*iampb.Binding{
			binding("roles/browser", manyDomains(126)...),
			binding("roles/iam.securityReviewer", manyDomains(126)...),
		}}, codes.InvalidArgument, "(252)"},
		{"20 conditions for one role and member", "§1 Limits: 20 bindings, same role and principal", project, &iampb.Policy{Version: 3, Bindings: sameRoleMember(20)}, codes.OK, ""},
		{"21 conditions for one role and member", "§1 Limits", project, &iampb.Policy{Version: 3, Bindings: sameRoleMember(21)}, codes.InvalidArgument, "maximum is 20"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, localiam.Config{})
			c := e.client(t, tc.resource, "")
			_, err := c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: tc.resource, Policy: tc.policy})
			if got := codeOf(err); got != tc.wantCode {
				t.Fatalf("[%s] code = %v (%v), want %v", tc.fact, got, err, tc.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("[%s] error %q does not contain %q", tc.fact, err, tc.wantMsg)
			}
			stored := e.srv.Policy(tc.resource)
			if err != nil && len(stored.GetBindings()) != 0 {
				t.Errorf("[%s] a refused write changed the policy: %v", tc.fact, stored)
			}
			if err == nil && len(stored.GetBindings()) == 0 {
				t.Errorf("[%s] an accepted write stored nothing", tc.fact)
			}
		})
	}
}

func prefixAll(prefix string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = prefix + s
	}
	return out
}

// docs/google-cloud.md §1: removing any binding from a policy that contains conditions
// needs version 3; the real refusal is "Specified policy version (1) cannot
// be less than the existing policy version (3)" (vault-plugin-secrets-gcp#88).
// Also the classic bug: read at v1, write back, refused on the _withcond_
// roles. In every case the conditions survive.
func TestVersion1WriteOverConditionalPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	c := e.client(t, project, "")
	set(t, c, project, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
		binding("roles/browser", "user:a@example.com"),
		condBinding("roles/iam.securityReviewer", condA, "user:b@example.com"),
	}})
	want := e.srv.Policy(project)

	v1 := get(t, c, project, 1)
	unconditional := &iampb.Policy{Version: 1, Etag: v1.GetEtag(), Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com", "user:new@example.com")}}
	for _, tc := range []struct {
		name    string
		policy  *iampb.Policy
		wantMsg string
	}{
		{"read at v1 and written back", v1, "_withcond_"},
		{"version 1 write with etag", unconditional, "cannot be less than the existing policy version (3)"},
		{"version 1 write without etag", &iampb.Policy{Version: 1, Bindings: unconditional.GetBindings()}, "cannot be less than the existing policy version (3)"},
		{"version 0 write", &iampb.Policy{Bindings: unconditional.GetBindings()}, "policies#versions"},
	} {
		_, err := c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: project, Policy: tc.policy})
		if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s: err = %v, want InvalidArgument containing %q", tc.name, err, tc.wantMsg)
		}
	}
	if diff := cmp.Diff(want, e.srv.Policy(project), protocmp.Transform()); diff != "" {
		t.Errorf("conditions did not survive (-want, +got):\n%s", diff)
	}

	// A version-3 write may remove the conditional binding.
	v3 := get(t, c, project, 3)
	out := set(t, c, project, &iampb.Policy{Version: 3, Etag: v3.GetEtag(), Bindings: v3.GetBindings()[:1]})
	if out.GetVersion() != 1 || len(out.GetBindings()) != 1 {
		t.Errorf("after removing the condition: %v, want one binding, version 1", out)
	}
}

// docs/google-cloud.md §1 etag: every policy has an etag that changes on each write;
// a stale etag is ABORTED with the real message; no etag = last write wins.
func TestEtag(t *testing.T) {
	t.Parallel()
	for _, res := range []string{project, subfolder, org} {
		t.Run(res, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, localiam.Config{})
			c := e.client(t, res, "")
			p0 := get(t, c, res, 3)
			if got := base64.StdEncoding.EncodeToString(p0.GetEtag()); got != "ACAB" {
				t.Errorf("etag of a never-written policy = %q, want ACAB", got)
			}
			p1 := set(t, c, res, &iampb.Policy{Etag: p0.GetEtag(), Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com")}})
			if len(p1.GetEtag()) == 0 || string(p1.GetEtag()) == string(p0.GetEtag()) {
				t.Fatalf("etag did not change on write: %x -> %x", p0.GetEtag(), p1.GetEtag())
			}
			if got := get(t, c, res, 3).GetEtag(); string(got) != string(p1.GetEtag()) {
				t.Errorf("Set returned etag %x, Get returns %x", p1.GetEtag(), got)
			}

			_, err := c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: res, Policy: &iampb.Policy{
				Etag: p0.GetEtag(), Bindings: []*iampb.Binding{binding("roles/browser", "user:stale@example.com")},
			}})
			if codeOf(err) != codes.Aborted || !strings.Contains(err.Error(), "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.") {
				t.Errorf("stale etag: err = %v, want ABORTED with the real message", err)
			}
			if got := e.srv.AbortedCount(); got != 1 {
				t.Errorf("AbortedCount = %d, want 1", got)
			}

			p2 := set(t, c, res, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "user:blind@example.com")}})
			if diff := cmp.Diff([]*iampb.Binding{binding("roles/browser", "user:blind@example.com")}, p2.GetBindings(), protocmp.Transform()); diff != "" {
				t.Errorf("blind write (-want, +got):\n%s", diff)
			}
			if string(p2.GetEtag()) == string(p1.GetEtag()) {
				t.Errorf("etag did not change on a blind write")
			}
		})
	}
}

// docs/google-cloud.md §1/§2: IAM merges bindings with the same role and condition and
// de-duplicates members; emails compare case-insensitively.
func TestMergesDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	c := e.client(t, folder, "")
	out := set(t, c, folder, &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
		binding("roles/browser", "user:b@example.com", "user:a@example.com"),
		condBinding("roles/browser", condA, "user:c@example.com"),
		binding("roles/browser", "user:A@Example.com", "user:d@example.com"),
		condBinding("roles/browser", condA, "user:c@example.com", "user:e@example.com"),
		condBinding("roles/browser", condB, "user:c@example.com"),
	}})
	want := []*iampb.Binding{
		binding("roles/browser", "user:a@example.com", "user:b@example.com", "user:d@example.com"),
		condBinding("roles/browser", condA, "user:c@example.com", "user:e@example.com"),
		condBinding("roles/browser", condB, "user:c@example.com"),
	}
	if diff := cmp.Diff(want, out.GetBindings(), protocmp.Transform()); diff != "" {
		t.Errorf("stored bindings (-want, +got):\n%s", diff)
	}
	if out.GetVersion() != 3 {
		t.Errorf("version = %d, want 3", out.GetVersion())
	}
}

// iam_policy.pb.go SetIamPolicyRequest.update_mask: only masked fields
// change; default "bindings, etag" (docs/google-cloud.md §1).
func TestUpdateMask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	c := e.client(t, org, "")
	audit := []*iampb.AuditConfig{{Service: "allServices", AuditLogConfigs: []*iampb.AuditLogConfig{{LogType: iampb.AuditLogConfig_DATA_READ}}}}
	set(t, c, org, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com")}, AuditConfigs: audit})
	if got := e.srv.Policy(org).GetAuditConfigs(); len(got) != 0 {
		t.Errorf("default mask stored audit configs: %v", got)
	}
	_, err := c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: org, Policy: &iampb.Policy{AuditConfigs: audit}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"audit_configs"}}})
	if err != nil {
		t.Fatalf("SetIamPolicy(audit_configs): %v", err)
	}
	p := e.srv.Policy(org)
	if diff := cmp.Diff(audit, p.GetAuditConfigs(), protocmp.Transform()); diff != "" {
		t.Errorf("audit configs (-want, +got):\n%s", diff)
	}
	if len(p.GetBindings()) != 1 {
		t.Errorf("an audit_configs-only mask changed the bindings: %v", p.GetBindings())
	}
	_, err = c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: org, Policy: &iampb.Policy{}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"members"}}})
	if codeOf(err) != codes.InvalidArgument {
		t.Errorf("unknown mask path: err = %v, want InvalidArgument", err)
	}
}

// docs/google-cloud.md §2: resource names projects/{id or number}, folders/N,
// organizations/N; an unknown resource is PERMISSION_DENIED.
func TestResourceNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	pc := e.client(t, project, "")
	byID := set(t, pc, project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com")}})
	if diff := cmp.Diff(byID, get(t, pc, projectN, 3), protocmp.Transform()); diff != "" {
		t.Errorf("projects/NUMBER shows another policy (-id, +number):\n%s", diff)
	}
	for _, tc := range []struct {
		resource string
		via      string // the service (client kind) the call goes through
		want     codes.Code
	}{
		{"projects/unknown-project", project, codes.PermissionDenied},
		{"projects/999999", project, codes.PermissionDenied},
		{"folders/999", folder, codes.PermissionDenied},
		{"organizations/999", org, codes.PermissionDenied},
		{"folders/10", project, codes.InvalidArgument},
		{"projects/UPPER", project, codes.InvalidArgument},
	} {
		c := e.client(t, tc.via, "")
		_, err := c.GetIamPolicy(t.Context(), &iampb.GetIamPolicyRequest{Resource: tc.resource})
		if got := codeOf(err); got != tc.want {
			t.Errorf("GetIamPolicy(%s): code %v (%v), want %v", tc.resource, got, err, tc.want)
		}
		_, err = c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: tc.resource, Policy: &iampb.Policy{}})
		if got := codeOf(err); got != tc.want {
			t.Errorf("SetIamPolicy(%s): code %v (%v), want %v", tc.resource, got, err, tc.want)
		}
	}
}

// docs/google-cloud.md §2: an owner that accepted the console invitation can be
// written back; only new user owners are refused.
func TestExistingUserOwnerSurvivesReadModifyWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localiam.Config{})
	if _, err := e.srv.SetPolicy(project, &iampb.Policy{Bindings: []*iampb.Binding{binding("roles/owner", "user:boss@example.com")}}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	c := e.client(t, project, "")
	p := get(t, c, project, 3)
	p.Bindings = append(p.Bindings, binding("roles/browser", "user:a@example.com"))
	set(t, c, project, p)

	p = get(t, c, project, 3)
	p.Bindings[1].Members = append(p.Bindings[1].Members, "user:second@example.com")
	_, err := c.SetIamPolicy(t.Context(), &iampb.SetIamPolicyRequest{Resource: project, Policy: p})
	if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "user:second@example.com") {
		t.Errorf("adding a user owner: err = %v, want InvalidArgument naming the user", err)
	}
}
