package groups

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/googleapi"
)

// demoIdentity is a small directory with nesting, a service account, an
// identity-mapped group and more rows than one page.
func demoIdentity() *fakeIdentity {
	f := newFakeIdentity()
	f.addGroup("sre@example.com", "user:alice@example.com", "group:oncall@example.com")
	f.addGroup("oncall@example.com", "user:bob@example.com", "user:carol@example.com", "serviceAccount:bot@p.iam.gserviceaccount.com")
	f.addGroup("eng@example.com", "group:sre@example.com", "user:dave@example.com")
	f.addGroup("all@example.com", "group:eng@example.com")
	f.addGroup("solo@example.com", "user:erin@example.com")
	f.addGroup("mapped@example.com", "user:bob@example.com")
	f.groups["mapped@example.com"].namespace = "identitysources/abc"
	return f
}

func TestCloudIdentityGroupsOf(t *testing.T) {
	t.Parallel()
	// docs/google-cloud.md §8 and §11: Cloud Identity is reached through the REST client
	// google.golang.org/api/cloudidentity/v1; searchTransitiveGroups with
	// parent groups/- needs member_key_id and a label in its query and pages
	// with nextPageToken (cloudidentity-api.json).
	tests := []struct {
		name  string
		email string
		want  []string
	}{
		{"nested through two levels, paged", "bob@example.com", []string{"all@example.com", "eng@example.com", "oncall@example.com", "sre@example.com"}},
		{"email is case-insensitive", "Alice@Example.COM", []string{"all@example.com", "eng@example.com", "sre@example.com"}},
		// An account with a group's address is not the group: it gets
		// none of the groups the group is in.
		{"a group's address gets no groups", "sre@example.com", []string{}},
		{"a group's address in another case", "SRE@Example.com", []string{}},
		{"unknown user has no groups", "nobody@example.com", []string{}},
	}
	f := demoIdentity()
	ci := f.start(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ci.GroupsOf(t.Context(), tc.email)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("GroupsOf(%q) mismatch (-want +got):\n%s", tc.email, diff)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pages["searchTransitiveGroups"] <= len(tests) {
		t.Errorf("served %d pages for %d searches; want paging to have happened", f.pages["searchTransitiveGroups"], len(tests))
	}
	if want := "member_key_id == 'bob@example.com' && 'cloudidentity.googleapis.com/groups.discussion_forum' in labels"; !slices.Contains(f.queries, want) {
		t.Errorf("queries %q do not include %q", f.queries, want)
	}
}

func TestCloudIdentityMembersOf(t *testing.T) {
	t.Parallel()
	// docs/google-cloud.md §8, §11: groups.lookup maps groupKey.id to groups/ID, then
	// searchTransitiveMemberships lists direct and indirect members, users
	// as users/ID with the email as preferredMemberKey, paged.
	f := demoIdentity()
	ci := f.start(t)
	tests := []struct {
		group string
		want  []string
	}{
		{"all@example.com", []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"}},
		{"OnCall@example.com", []string{"bob@example.com", "carol@example.com"}},
		{"solo@example.com", []string{"erin@example.com"}},
	}
	for _, tc := range tests {
		got, err := ci.MembersOf(t.Context(), tc.group)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("MembersOf(%q) mismatch (-want +got):\n%s", tc.group, diff)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pages["searchTransitiveMemberships"] <= len(tests) {
		t.Errorf("served %d pages for %d searches; want paging to have happened", f.pages["searchTransitiveMemberships"], len(tests))
	}
}

func TestCloudIdentityErrors(t *testing.T) {
	t.Parallel()
	// docs/google-cloud.md §8: the transitive searches are "only available to Google
	// Workspace Enterprise … and Cloud Identity Premium accounts", otherwise
	// 403 PERMISSION_DENIED (cloudidentity-gen.go). An unknown group key is
	// 404 from groups.lookup.
	basic := demoIdentity()
	basic.premium = false
	ciBasic := basic.start(t)
	ci := demoIdentity().start(t)

	tests := []struct {
		name     string
		call     func() error
		code     int // HTTP status in the error chain; 0 for none
		notFound bool
	}{
		{"unknown group", func() error { _, err := ci.MembersOf(t.Context(), "ghost@example.com"); return err }, http.StatusNotFound, true},
		{"groups of, edition without the feature", func() error { _, err := ciBasic.GroupsOf(t.Context(), "bob@example.com"); return err }, http.StatusForbidden, false},
		{"members of, edition without the feature", func() error { _, err := ciBasic.MembersOf(t.Context(), "sre@example.com"); return err }, http.StatusForbidden, false},
		{"not an email", func() error { _, err := ci.GroupsOf(t.Context(), "x' || true || '"); return err }, 0, false},
		{"look-alike address", func() error { _, err := ci.GroupsOf(t.Context(), "bob@example.com\u00a0"); return err }, 0, false},
		{"look-alike group", func() error { _, err := ci.MembersOf(t.Context(), "sre@example.com\u3000"); return err }, 0, false},
		{"empty group", func() error { _, err := ci.MembersOf(t.Context(), ""); return err }, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("got nil error")
			}
			var gerr *googleapi.Error
			code := 0
			if errors.As(err, &gerr) {
				code = gerr.Code
			}
			if code != tc.code {
				t.Errorf("HTTP status %d, want %d (err %v)", code, tc.code, err)
			}
			if got := errors.Is(err, ErrNotFound); got != tc.notFound {
				t.Errorf("errors.Is(ErrNotFound) = %v, want %v (err %v)", got, tc.notFound, err)
			}
		})
	}
}
