// Package groups answers who is in which group: the subject principals of a
// requester (their groups, directly or through nested groups) and the users
// of a group (to find approvers).
//
// On Google Cloud the answers come from the Cloud Identity Groups API
// (NewCloudIdentity); locally from the world file (package world). Either is
// wrapped in a Cache, because group membership is asked for on every request
// and changes slowly: Google itself takes minutes to hours to propagate a
// membership change (docs/google-cloud.md §8), and JIT Groups caches subject principals
// for 30 s (docs/jit-access.md §3.3).
package groups

import (
	"context"
	"errors"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// Resolver resolves group membership. Emails are compared case-insensitively
// and returned lower-cased.
type Resolver interface {
	// GroupsOf returns the emails of every group the user belongs to,
	// directly or through nested groups (transitive), lower-cased, sorted.
	// An unknown user belongs to no group.
	GroupsOf(ctx context.Context, email string) ([]string, error)
	// MembersOf returns the user emails in the group, transitively (for
	// finding approvers), lower-cased, sorted. An unknown group is an error
	// that wraps ErrNotFound.
	MembersOf(ctx context.Context, group string) ([]string, error)
}

// ErrNotFound is wrapped by MembersOf errors for a group that does not exist.
var ErrNotFound = errors.New("group not found")

// Normalize is the key of an email: lower-cased by ASCII rules only
// (emailaddr.Key). Google treats addresses case-insensitively and IAM
// stores members lower-cased; nothing is trimmed or Unicode-folded, so a
// look-alike never resolves to another's groups.
func Normalize(email string) string {
	return emailaddr.Key(email)
}
