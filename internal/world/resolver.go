package world

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jitpipeline/jit/internal/groups"
)

// index is the membership graph of a world's groups, both ways.
type index struct {
	members map[string][]string // group email -> direct members (principals)
	parents map[string][]string // member email -> groups it is a direct member of
}

func (w *World) index() *index {
	w.indexOnce.Do(func() {
		idx := &index{members: map[string][]string{}, parents: map[string][]string{}}
		for _, g := range w.Groups {
			idx.members[g.Email] = append(idx.members[g.Email], g.Members...)
			if idx.members[g.Email] == nil {
				idx.members[g.Email] = []string{} // known, empty
			}
			for _, m := range g.Members {
				_, email, _ := strings.Cut(m, ":")
				idx.parents[email] = append(idx.parents[email], g.Email)
			}
		}
		w.idx = idx
	})
	return w.idx
}

// resolver implements groups.Resolver over an index. Both walks keep a set
// of visited groups, so cycles end.
type resolver struct{ idx *index }

var _ groups.Resolver = resolver{}

// GroupsOf walks up from email through every group that contains it. A group
// in a cycle is not reported as a member of itself.
func (r resolver) GroupsOf(ctx context.Context, email string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := groups.Normalize(email)
	seen := map[string]bool{start: true}
	queue := []string{start}
	out := []string{}
	for len(queue) > 0 {
		at := queue[0]
		queue = queue[1:]
		for _, g := range r.idx.parents[at] {
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
				queue = append(queue, g)
			}
		}
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
