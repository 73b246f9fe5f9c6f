package groups

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/api/cloudidentity/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// discussionForumLabel marks a Google Group; searchTransitiveGroups requires
// a label in its query (docs/google-cloud.md §8; cloudidentity-api.json).
const discussionForumLabel = "cloudidentity.googleapis.com/groups.discussion_forum"

// maxPageSize is the largest page the transitive searches serve
// (cloudidentity-gen.go: "The default page size is 200 (max 1000)").
const maxPageSize = 1000

// CloudIdentity resolves group membership through the Cloud Identity Groups
// API. Its transitive searches need Google Workspace Enterprise or Cloud
// Identity Premium; on other editions they fail with 403 PERMISSION_DENIED,
// which is returned as an error, never as "no groups".
type CloudIdentity struct {
	svc *cloudidentity.Service
}

var _ Resolver = (*CloudIdentity)(nil)

// NewCloudIdentity returns a resolver using the real Cloud Identity client.
// It asks for the read-only groups scope; opts may override it (and, in
// tests, point the client at a local server with option.WithEndpoint).
func NewCloudIdentity(ctx context.Context, opts ...option.ClientOption) (*CloudIdentity, error) {
	all := append([]option.ClientOption{option.WithScopes(cloudidentity.CloudIdentityGroupsReadonlyScope)}, opts...)
	svc, err := cloudidentity.NewService(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("failed to create the Cloud Identity client: %w", err)
	}
	return &CloudIdentity{svc: svc}, nil
}

// GroupsOf lists the Google Groups the user is a member of, directly or
// indirectly, with groups.memberships.searchTransitiveGroups across all
// groups (parent "groups/-"). Identity-mapped groups (those with a
// namespace) have no email and are skipped.
//
// The search matches member_key_id whatever kind of member holds it, and
// cannot filter by kind; so the address is first looked up as a group
// (groups.lookup): if a group has it, the caller is not that group's
// members' peer but someone sharing its address (an account outside the
// directory, say), and gets no group — never the group's own parents.
func (c *CloudIdentity) GroupsOf(ctx context.Context, raw string) ([]string, error) {
	email, err := queryEmail(raw)
	if err != nil {
		return nil, fmt.Errorf("failed to search the groups of %q: %w", raw, err)
	}
	switch _, err := c.svc.Groups.Lookup().GroupKeyId(email).Context(ctx).Do(); {
	case err == nil:
		return []string{}, nil // a group's address: the user is not the group
	case !isStatus(err, http.StatusNotFound):
		return nil, fmt.Errorf("failed to check whether %s is a group's address: %w", email, err)
	}
	query := fmt.Sprintf("member_key_id == '%s' && '%s' in labels", email, discussionForumLabel)
	call := c.svc.Groups.Memberships.SearchTransitiveGroups("groups/-").Query(query).PageSize(maxPageSize)
	seen := map[string]bool{}
	err = call.Pages(ctx, func(page *cloudidentity.SearchTransitiveGroupsResponse) error {
		for _, m := range page.Memberships {
			if k := m.GroupKey; k != nil && k.Namespace == "" && k.Id != "" {
				seen[Normalize(k.Id)] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to search the groups of %s: %w", email, err)
	}
	return sortedKeys(seen), nil
}

// MembersOf resolves the group's resource name with groups.lookup, then lists
// its members with groups.memberships.searchTransitiveMemberships, keeping
// users (member "users/…") by their preferred member key, the email. Nested
// groups are expanded by the API itself; service accounts and
// identity-mapped members are skipped.
func (c *CloudIdentity) MembersOf(ctx context.Context, raw string) ([]string, error) {
	group, err := queryEmail(raw)
	if err != nil {
		return nil, fmt.Errorf("failed to list the members of %q: %w", raw, err)
	}
	found, err := c.svc.Groups.Lookup().GroupKeyId(group).Context(ctx).Do()
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("failed to look up group %s: %w: %w", group, ErrNotFound, err)
		}
		return nil, fmt.Errorf("failed to look up group %s: %w", group, err)
	}
	if !strings.HasPrefix(found.Name, "groups/") {
		return nil, fmt.Errorf("failed to look up group %s: unexpected resource name %q", group, found.Name)
	}
	call := c.svc.Groups.Memberships.SearchTransitiveMemberships(found.Name).PageSize(maxPageSize)
	seen := map[string]bool{}
	err = call.Pages(ctx, func(page *cloudidentity.SearchTransitiveMembershipsResponse) error {
		for _, m := range page.Memberships {
			if !strings.HasPrefix(m.Member, "users/") {
				continue // a nested group: its users are listed too
			}
			for _, k := range m.PreferredMemberKey {
				if k != nil && k.Namespace == "" && k.Id != "" && !isServiceAccount(k.Id) {
					seen[Normalize(k.Id)] = true
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to search the members of group %s (%s): %w", group, found.Name, err)
	}
	return sortedKeys(seen), nil
}

// queryEmail is the canonical form of an address that is safe to quote in
// a search query: emailaddr refuses quotes, backslashes, spaces and
// controls already, but allows the apostrophe, which would end the quoted
// literal.
func queryEmail(raw string) (string, error) {
	email, err := emailaddr.Canonical(raw)
	if err != nil {
		return "", err
	}
	if strings.ContainsRune(email, '\'') {
		return "", fmt.Errorf("%q cannot be quoted in a Cloud Identity query", email)
	}
	return email, nil
}

func isServiceAccount(email string) bool {
	return strings.HasSuffix(email, ".gserviceaccount.com")
}

func isStatus(err error, code int) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == code
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
