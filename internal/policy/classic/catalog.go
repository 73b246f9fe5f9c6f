package classic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/policy"
)

// IAMClient is the slice of the Resource Manager v3 clients the catalog
// needs; *resourcemanager.ProjectsClient, FoldersClient and
// OrganizationsClient satisfy it as they are.
type IAMClient interface {
	GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error)
}

// Catalog is the eligible bindings of a scope, cached. The folder listing
// and every resource's allow policy are kept with the time they were read;
// a listing refreshes only what is older than MaxAge, each entry with a
// jittered age so that refreshes spread over time instead of re-reading
// the whole scope at once, and the environment is rebuilt only when a
// policy's etag or the hierarchy changed. Fresh re-reads, whatever their
// age, the policies that decide on one project: what every decision uses.
//
// The catalog is safe for concurrent use; one refresh runs at a time, in
// the background.
type Catalog struct {
	cfg     Config
	root    *policy.Environment // constraints and options, no systems
	limit   *rate.Limiter       // Resource Manager calls, under the consumer project's quota
	listing Hierarchy           // cfg.Hierarchy, under the limit

	walking sync.Mutex // one walk at a time

	mu       sync.Mutex
	parents  map[string]string // resource → parent; scope resources → ""
	walkedAt time.Time
	entries  map[string]*entry
	gen      uint64 // bumped whenever what the environment is built from changes
	built    uint64 // gen of env
	env      *policy.Environment
	failedAt time.Time // last refresh failure, to back off
	lastErr  error
	running  chan struct{} // closed when the refresh under way ends
}

// entry is one resource's allow policy, as far as eligibility goes.
type entry struct {
	etag     []byte
	eligible []eligible
	staleAt  time.Time
}

// eligible is one eligible binding.
type eligible struct {
	role, cond string
	mpa        bool
	members    []policy.Principal
}

// NewCatalog checks the config; nothing is read until the first listing.
func NewCatalog(cfg Config) (*Catalog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid classic mode config: %w", err)
	}
	cfg = cfg.withDefaults()
	root, err := environment(cfg)
	if err != nil {
		return nil, err
	}
	c := &Catalog{cfg: cfg, root: root, entries: map[string]*entry{}, limit: rate.NewLimiter(rate.Inf, 0)}
	if cfg.ReadsPerSecond > 0 {
		c.limit = rate.NewLimiter(rate.Limit(cfg.ReadsPerSecond), max(1, int(cfg.ReadsPerSecond)))
	}
	c.listing = limitedHierarchy{cfg.Hierarchy, c.limit}
	return c, nil
}

// Name is the environment's name.
func (c *Catalog) Name() string { return c.cfg.Environment }

// retryAfterFailure is how long a listing serves what it has, without
// trying again, after a refresh failed.
const retryAfterFailure = 30 * time.Second

// refreshTimeout bounds one refresh in the background.
const refreshTimeout = 10 * time.Minute

// Environment returns the classic environment for a listing: built from
// the cache, after refreshing what is stale. The refresh runs in the
// background and a listing waits for it at most ListingWait: a cold
// catalog of a large scope (500 projects take 100 s at 5 calls a second)
// answers with what it has read so far, and Complete says whether that
// is everything. Its second result is a generation that changes whenever
// the environment does. If a refresh fails, what the cache holds is
// served with the error, and no refresh is tried for 30 seconds.
func (c *Catalog) Environment(ctx context.Context) (*policy.Environment, uint64, error) {
	err := c.refreshStale(ctx)
	env, gen, buildErr := c.current()
	return env, gen, errors.Join(err, buildErr)
}

// Complete reports whether every resource of the scope, as last walked,
// has been read: false while a cold catalog fills.
func (c *Catalog) Complete() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parents == nil {
		return false
	}
	for r := range c.parents {
		if c.entries[r] == nil {
			return false
		}
	}
	return true
}

func (c *Catalog) refreshStale(ctx context.Context) error {
	now := c.cfg.Now()
	c.mu.Lock()
	if !c.failedAt.IsZero() && now.Sub(c.failedAt) < retryAfterFailure {
		err := c.lastErr
		c.mu.Unlock()
		return err
	}
	if c.parents != nil && now.Sub(c.walkedAt) < c.cfg.MaxAge && !c.anyStale(now) {
		c.mu.Unlock()
		return nil
	}
	if c.running == nil {
		done := make(chan struct{})
		c.running = done
		// Not the caller's context: the refresh outlives a listing that
		// stops waiting for it.
		go func() {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			err := c.refresh(bg, now)
			c.mu.Lock()
			if err != nil {
				c.failedAt, c.lastErr = c.cfg.Now(), err
			} else {
				c.failedAt, c.lastErr = time.Time{}, nil
			}
			c.running = nil
			c.mu.Unlock()
			close(done)
		}()
	}
	done := c.running
	c.mu.Unlock()
	wait := time.NewTimer(c.cfg.ListingWait)
	defer wait.Stop()
	select {
	case <-done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lastErr
	case <-wait.C:
		return nil // served incomplete (Complete)
	case <-ctx.Done():
		return nil
	}
}

// anyStale reports whether a known resource's policy is due; c.mu held.
func (c *Catalog) anyStale(now time.Time) bool {
	for r := range c.parents {
		if e := c.entries[r]; e == nil || !now.Before(e.staleAt) {
			return true
		}
	}
	return false
}

// refresh walks the scope if the walk is due and reads the policies that
// are.
func (c *Catalog) refresh(ctx context.Context, now time.Time) error {
	if err := c.walk(ctx, now); err != nil {
		return err
	}
	c.mu.Lock()
	var due []string
	for r := range c.parents {
		if e := c.entries[r]; e == nil || !now.Before(e.staleAt) {
			due = append(due, r)
		}
	}
	c.mu.Unlock()
	sort.Strings(due)
	return c.read(ctx, due)
}

// walk lists the scope's folders and projects again once the last walk
// is MaxAge old (or there was none); one walk runs at a time.
func (c *Catalog) walk(ctx context.Context, now time.Time) error {
	c.walking.Lock()
	defer c.walking.Unlock()
	c.mu.Lock()
	due := c.parents == nil || now.Sub(c.walkedAt) >= c.cfg.MaxAge
	c.mu.Unlock()
	if !due {
		return nil
	}
	parents, err := walkTree(ctx, c.listing, c.cfg.Scope)
	if err != nil {
		return fmt.Errorf("failed to list the scope's folders and projects: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !sameTree(c.parents, parents) {
		c.gen++
	}
	c.parents, c.walkedAt = parents, now
	for r := range c.entries {
		if _, ok := parents[r]; !ok {
			delete(c.entries, r) // left the scope
		}
	}
	return nil
}

// Fresh re-reads the allow policies of a project and of its ancestors in
// the scope, whatever their age, and returns the environment built from
// them: what a decision on one of the project's entitlements needs, and
// a listing of one project. The scope is walked first only if it never
// was or its walk is MaxAge old, so that made-up entitlement names cannot
// make every request walk the whole scope: a project created since the
// last walk is decided on after the next one. Fresh does not wait for a
// refresh under way.
func (c *Catalog) Fresh(ctx context.Context, project string) (*policy.Environment, uint64, error) {
	c.mu.Lock()
	_, inScope := c.parents[project]
	c.mu.Unlock()
	if !inScope {
		if err := c.walk(ctx, c.cfg.Now()); err != nil {
			return nil, 0, err
		}
	}
	c.mu.Lock()
	var chain []string
	for r := project; r != ""; r = c.parents[r] {
		if _, ok := c.parents[r]; !ok {
			break
		}
		chain = append(chain, r)
	}
	c.mu.Unlock()
	if err := c.read(ctx, chain); err != nil {
		return nil, 0, err
	}
	return c.current()
}

// read fetches the allow policies of resources, Concurrency at a time.
func (c *Catalog) read(ctx context.Context, resources []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for _, r := range resources {
		g.Go(func() error {
			if err := c.limit.Wait(ctx); err != nil {
				return err
			}
			pol, err := c.client(r).GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{
				Resource: r,
				// Version 3, or conditional bindings come back stripped
				// (docs/google-cloud.md §1).
				Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3},
			}, quotaRetry)
			if err != nil {
				return fmt.Errorf("failed to read the IAM policy of %s: %w", r, err)
			}
			c.store(ctx, r, pol)
			return nil
		})
	}
	return g.Wait()
}

func (c *Catalog) client(resource string) IAMClient {
	switch {
	case strings.HasPrefix(resource, "folders/"):
		return c.cfg.Folders
	case strings.HasPrefix(resource, "organizations/"):
		return c.cfg.Organizations
	}
	return c.cfg.Projects
}

// store keeps a resource's eligible bindings, due again after between
// half and all of MaxAge.
func (c *Catalog) store(ctx context.Context, resource string, pol *iampb.Policy) {
	staleAt := c.cfg.Now().Add(c.cfg.MaxAge/2 + rand.N(c.cfg.MaxAge/2+1)) //nolint:gosec // G404: spreading refreshes needs no unpredictability
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.entries[resource]
	if old != nil && bytes.Equal(old.etag, pol.GetEtag()) && len(pol.GetEtag()) > 0 {
		old.staleAt = staleAt
		return
	}
	c.entries[resource] = &entry{etag: pol.GetEtag(), eligible: c.eligibleIn(ctx, resource, pol), staleAt: staleAt}
	c.gen++
}

// eligibleIn extracts the eligible bindings of one policy.
func (c *Catalog) eligibleIn(ctx context.Context, resource string, pol *iampb.Policy) []eligible {
	var out []eligible
	for _, b := range pol.GetBindings() {
		expr := b.GetCondition().GetExpression()
		if expr == "" {
			continue
		}
		marker, resCond, err := iamcond.EligibilityErr(expr)
		if err != nil {
			// Only a condition that names a marker is worth a word: any
			// other conditional binding with a top-level || is refused
			// before the marker is looked for.
			if !errors.Is(err, iamcond.ErrNoMarker) && mentionsMarker(expr) {
				c.cfg.Logger.WarnContext(ctx, "binding not eligible", "resource", resource, "role", b.GetRole(), "error", err)
			}
			continue
		}
		e := eligible{role: b.GetRole(), cond: resCond, mpa: marker == iamcond.MPA}
		for _, m := range b.GetMembers() {
			p, err := policy.ParsePrincipal(m)
			if err != nil || (p.Type != policy.UserPrincipal && p.Type != policy.GroupPrincipal) {
				continue // service accounts and the like cannot request access
			}
			e.members = append(e.members, p)
		}
		if len(e.members) > 0 {
			out = append(out, e)
		}
	}
	return out
}

// current returns the environment for the cache's generation, building
// it if needed.
func (c *Catalog) current() (*policy.Environment, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.env != nil && c.built == c.gen {
		return c.env, c.gen, nil
	}
	env := *c.root
	env.Systems = nil
	var projects []string
	for r := range c.parents {
		if strings.HasPrefix(r, "projects/") {
			projects = append(projects, r)
		}
	}
	sort.Strings(projects)
	for _, project := range projects {
		if sys := c.system(project); sys != nil {
			env.Systems = append(env.Systems, sys)
		}
	}
	// Build validates names and sets the back pointers; the merged policy
	// is built by the caller.
	if _, err := policy.Build(&env); err != nil {
		return nil, 0, fmt.Errorf("failed to build the classic environment: %w", err)
	}
	c.env, c.built = &env, c.gen
	return c.env, c.gen, nil
}

// system is a project's entitlements: the eligible bindings on it and on
// its ancestors in the scope, each granting the role on the project;
// c.mu held.
func (c *Catalog) system(project string) *policy.System {
	byKey := map[string]*policy.Group{}
	for r, ok := project, true; ok && r != ""; r, ok = c.parents[r] {
		e := c.entries[r]
		if e == nil {
			continue
		}
		for _, b := range e.eligible {
			key := b.role + "\x00" + b.cond
			g := byKey[key]
			if g == nil {
				g = &policy.Group{Privileges: []policy.Privilege{{Resource: project, Role: b.role, Condition: b.cond}}}
				g.Name = groupName(b.role, b.cond)
				g.Description = b.role + " on " + project
				if b.cond != "" {
					g.Description += " (" + b.cond + ")"
				}
				byKey[key] = g
			}
			mask := policy.Join | policy.ApproveSelf
			if b.mpa {
				mask = policy.Join | policy.ApproveOthers
			}
			for _, m := range b.members {
				g.ACL = append(g.ACL, policy.ACE{Principal: m, Mask: mask})
			}
		}
	}
	if len(byKey) == 0 {
		return nil
	}
	sys := &policy.System{}
	sys.Name = strings.TrimPrefix(project, "projects/")
	sys.Description = project
	for _, g := range byKey {
		sys.Groups = append(sys.Groups, g)
	}
	sort.Slice(sys.Groups, func(i, j int) bool { return sys.Groups[i].Name < sys.Groups[j].Name })
	return sys
}

// ProjectOf returns the project an entitlement of the environment grants
// on (its system), or false for another environment's.
func (c *Catalog) ProjectOf(entitlement string) (string, bool) {
	env, rest, ok := strings.Cut(strings.ToLower(entitlement), ".")
	if !ok || env != strings.ToLower(c.cfg.Environment) {
		return "", false
	}
	sys, _, ok := strings.Cut(rest, ".")
	if !ok || sys == "" {
		return "", false
	}
	return "projects/" + sys, true
}

func sameTree(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// limitedHierarchy waits for the limiter before each listing (a listing of
// more than one page counts once: pages of 1,000 are rare).
type limitedHierarchy struct {
	h     Hierarchy
	limit *rate.Limiter
}

func (l limitedHierarchy) Folders(ctx context.Context, parent string) ([]string, error) {
	if err := l.limit.Wait(ctx); err != nil {
		return nil, err
	}
	return l.h.Folders(ctx, parent)
}

func (l limitedHierarchy) Projects(ctx context.Context, parent string) ([]string, error) {
	if err := l.limit.Wait(ctx); err != nil {
		return nil, err
	}
	return l.h.Projects(ctx, parent)
}

// mentionsMarker reports whether a condition names an eligibility marker
// at all, in any case.
func mentionsMarker(expr string) bool {
	e := strings.ToLower(expr)
	return strings.Contains(e, "jitaccessconstraint") || strings.Contains(e, "multipartyapprovalconstraint")
}
