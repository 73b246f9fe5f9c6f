package world

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
	"google.golang.org/genproto/googleapis/type/expr"

	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
)

// Seed creates the world in the local IAM: the organization, the folders
// (parents first), the projects, then the initial bindings. It runs on every
// start, so it is idempotent, and it never overwrites what the pipeline did:
// a resource's initial bindings are written only while its policy has no
// bindings at all. Once anything is granted or changed there, the world file
// no longer applies to that resource (one consequence: a resource whose
// bindings were all removed gets its initial bindings again on the next
// start). Problems are reported together, each naming its resource.
func (w *World) Seed(s *localiam.Server) error {
	if err := s.AddOrganization(w.Organization.ID); err != nil {
		return fmt.Errorf("failed to seed the organization: %w", err)
	}
	var errs []error
	for _, f := range w.foldersParentsFirst() {
		if err := s.AddFolder(f.ID, f.Parent); err != nil {
			errs = append(errs, fmt.Errorf("failed to seed folder %s (line %d): %w", f.ID, f.line, err))
		}
	}
	for _, p := range w.Projects {
		if err := s.AddProject(p.ID, p.Number, p.Parent); err != nil {
			errs = append(errs, fmt.Errorf("failed to seed project %s (line %d): %w", p.ID, p.line, err))
		}
	}
	for _, res := range w.bindingsByResource() {
		if err := seedPolicy(s, res.name, res.bindings); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// seedPolicy writes the initial bindings of one resource if it has none.
func seedPolicy(s *localiam.Server, resource string, bindings []Binding) error {
	nums := make([]string, len(bindings))
	for i, b := range bindings {
		nums[i] = fmt.Sprint(b.line)
	}
	lines := "line " + nums[0]
	if len(nums) > 1 {
		lines = "lines " + strings.Join(nums, ", ")
	}
	current := s.Policy(resource)
	if current == nil {
		return fmt.Errorf("failed to seed the bindings of %s (%s): unknown resource", resource, lines)
	}
	if len(current.GetBindings()) > 0 {
		return nil // already seeded, or changed since: leave it alone
	}
	// Version 3 and the etag just read: the same discipline as the pipeline
	// (docs/google-cloud.md §1), so a concurrent writer makes this fail, not vanish.
	p := &iampb.Policy{Version: 3, Etag: current.GetEtag()}
	for _, b := range bindings {
		pb := &iampb.Binding{Role: b.Role, Members: slices.Clone(b.Members)}
		if c := b.Condition; c != nil {
			pb.Condition = &expr.Expr{Title: c.Title, Description: c.Description, Expression: c.Expression}
		}
		p.Bindings = append(p.Bindings, pb)
	}
	if _, err := s.SetPolicy(resource, p); err != nil {
		return fmt.Errorf("failed to seed the bindings of %s (%s): %w", resource, lines, err)
	}
	return nil
}

// foldersParentsFirst orders folders so that each comes after its parent,
// keeping file order otherwise.
func (w *World) foldersParentsFirst() []Folder {
	byID := map[string]Folder{}
	for _, f := range w.Folders {
		byID[f.ID] = f
	}
	depth := func(f Folder) int {
		d := 0
		for d <= len(byID) { // bounded: validation refuses cycles anyway
			id, ok := strings.CutPrefix(f.Parent, "folders/")
			if !ok {
				break
			}
			if f, ok = byID[id]; !ok {
				break
			}
			d++
		}
		return d
	}
	out := slices.Clone(w.Folders)
	slices.SortStableFunc(out, func(a, b Folder) int { return depth(a) - depth(b) })
	return out
}

type resourceBindings struct {
	name     string
	bindings []Binding
}

// bindingsByResource groups the bindings per resource, in file order.
func (w *World) bindingsByResource() []resourceBindings {
	var out []resourceBindings
	at := map[string]int{}
	for _, b := range w.Bindings {
		i, ok := at[b.Resource]
		if !ok {
			i = len(out)
			at[b.Resource] = i
			out = append(out, resourceBindings{name: b.Resource})
		}
		out[i].bindings = append(out[i].bindings, b)
	}
	return out
}
