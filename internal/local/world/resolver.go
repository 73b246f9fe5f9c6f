package world

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jitpipeline/jit/internal/groups"
)

// index is the membership graph of a world's groups, both ways, and the
// directory of its users.
type index struct {
	members map[string][]string // group email -> direct members (principals)
	// parents is keyed by member principal (user:…, group:…,
	// serviceAccount:…), not bare email: a user whose address is also a
	// group's must not inherit that group's memberships.
	parents map[string][]string
	users   map[string]User // email -> declared user
}

func (w *World) index() *index {
	w.indexOnce.Do(func() {
		idx := &index{members: map[string][]string{}, parents: map[string][]string{}, users: map[string]User{}}
		for _, g := range w.Groups {
			idx.members[g.Email] = append(idx.members[g.Email], g.Members...)
			if idx.members[g.Email] == nil {
				idx.members[g.Email] = []string{} // known, empty
			}
			for _, m := range g.Members {
				idx.parents[m] = append(idx.parents[m], g.Email)
			}
		}
		for _, u := range w.Users {
			idx.users[u.Email] = u
		}
		w.idx = idx
	})
	return w.idx
}

// resolver implements groups.Resolver over an index. Both walks keep a set
// of visited groups, so cycles end.
type resolver struct{ idx *index }

var _ groups.Resolver = resolver{}

// GroupsOf walks up from the account email — as a user:, or a
// serviceAccount: member, never as a group: member — through every group
// that contains it. A group's own address is no account: it belongs to
// no group here, so nobody signing in with it inherits the group's
// memberships. A group in a cycle is not reported as a member of itself.
func (r resolver) GroupsOf(ctx context.Context, email string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := groups.Normalize(email)
	if _, isGroup := r.idx.members[key]; isGroup {
		return []string{}, nil
	}
	seen := map[string]bool{}
	var queue []string
	for _, m := range []string{"user:" + key, "serviceAccount:" + key} {
		for _, g := range r.idx.parents[m] {
			if !seen[g] {
				seen[g] = true
				queue = append(queue, g)
			}
		}
	}
	out := slices.Clone(queue)
	for len(queue) > 0 {
		at := queue[0]
		queue = queue[1:]
		for _, g := range r.idx.parents["group:"+at] {
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
				queue = append(queue, g)
			}
		}
	}
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out, nil
}

// MembersOf walks down from group, collecting users; service accounts are
// not people who could approve, so they are left out.
func (r resolver) MembersOf(ctx context.Context, group string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := groups.Normalize(group)
	if _, ok := r.idx.members[start]; !ok {
		return nil, fmt.Errorf("failed to list the members of %s: %w", start, groups.ErrNotFound)
	}
	seenGroup := map[string]bool{start: true}
	users := map[string]bool{}
	queue := []string{start}
	for len(queue) > 0 {
		at := queue[0]
		queue = queue[1:]
		for _, m := range r.idx.members[at] {
			typ, email, _ := strings.Cut(m, ":")
			switch {
			case typ == "user":
				users[email] = true
			case typ == "group" && !seenGroup[email]:
				seenGroup[email] = true
				queue = append(queue, email)
			}
		}
	}
	out := make([]string, 0, len(users))
	for u := range users {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
}
