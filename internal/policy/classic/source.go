package classic

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jitpipeline/jit/internal/policy"
)

// Documents gives the policy document in force (policy/source.Source).
type Documents interface {
	Current(ctx context.Context) (*policy.Policy, string, error)
}

// Source is the policy in force with classic mode on: the policy
// document's, with the catalog's environment merged in. Its version is
// the document's, then "+", the environment's name and its generation.
type Source struct {
	docs Documents
	cat  *Catalog
	log  *slog.Logger

	mu     sync.Mutex
	key    string
	merged *policy.Policy
}

// NewSource merges cat's entitlements into those of docs.
func NewSource(docs Documents, cat *Catalog, log *slog.Logger) *Source {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{docs: docs, cat: cat, log: log}
}

// Current is the policy for listings: the catalog as cached (refreshed
// where stale). When the catalog cannot be refreshed, what it last read
// is served and the failure logged: the document's entitlements stay
// available whatever happens to Resource Manager.
func (s *Source) Current(ctx context.Context) (*policy.Policy, string, error) {
	doc, v, err := s.docs.Current(ctx)
	if err != nil {
		return nil, "", err
	}
	env, gen, err := s.cat.Environment(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "eligible bindings not refreshed; serving the cached ones", "error", err)
	}
	if env == nil {
		return doc, v, nil
	}
	merged, key, err := s.merge(doc, v, env, gen)
	if err != nil {
		// A document that clashes with the classic environment (an
		// environment of the same name) must not take its own
		// entitlements down with it.
		s.log.ErrorContext(ctx, "eligible bindings left out of the listing", "error", err)
		return doc, v, nil
	}
	return merged, key, nil
}

// Complete reports whether the listing's eligible bindings are all read
// (false while a cold catalog fills).
func (s *Source) Complete() bool { return s.cat.Complete() }

// ForProject is the policy for a listing of one project: the project's
// and its ancestors' allow policies read now, whatever the cache holds —
// a few calls, fast even when the catalog is cold.
func (s *Source) ForProject(ctx context.Context, project string) (*policy.Policy, string, error) {
	doc, v, err := s.docs.Current(ctx)
	if err != nil {
		return nil, "", err
	}
	env, gen, err := s.cat.Fresh(ctx, "projects/"+project)
	if err != nil {
		return nil, "", fmt.Errorf("failed to read the eligible bindings of projects/%s: %w", project, err)
	}
	return s.merge(doc, v, env, gen)
}

// Fresh is the policy for a decision on one entitlement: for one of the
// catalog's, the allow policies of its project and the project's
// ancestors are read again first, and a failure to read them refuses the
// decision (it fails closed). Other entitlements are decided on Current.
func (s *Source) Fresh(ctx context.Context, entitlement string) (*policy.Policy, string, error) {
	project, ok := s.cat.ProjectOf(entitlement)
	if !ok {
		return s.Current(ctx)
	}
	doc, v, err := s.docs.Current(ctx)
	if err != nil {
		return nil, "", err
	}
	env, gen, err := s.cat.Fresh(ctx, project)
	if err != nil {
		return nil, "", fmt.Errorf("failed to read the eligible bindings of %s: %w", project, err)
	}
	return s.merge(doc, v, env, gen)
}

func (s *Source) merge(doc *policy.Policy, v string, env *policy.Environment, gen uint64) (*policy.Policy, string, error) {
	key := fmt.Sprintf("%s+%s.%d", v, env.Name, gen)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.merged != nil && s.key == key {
		return s.merged, key, nil
	}
	merged, err := policy.Merge(doc, env)
	if err != nil {
		return nil, "", fmt.Errorf("failed to merge the eligible bindings into policy %s: %w", v, err)
	}
	s.key, s.merged = key, merged
	return merged, key, nil
}
