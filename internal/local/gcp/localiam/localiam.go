// Package localiam is an in-process fake of the IAM methods of Resource
// Manager v3 (GetIamPolicy, SetIamPolicy, TestIamPermissions on projects,
// folders and organizations), served over gRPC so that production code
// reaches it through the real cloud.google.com/go/resourcemanager clients.
//
// It is deliberately as strict as the real service (docs/google-cloud.md §1, §2):
// policy versions, conditional bindings, the _withcond_ rendering for
// version-1 readers, etags and ABORTED, quotas, member syntax and CEL
// conditions. A kinder fake would hide exactly the bugs that matter.
package localiam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/resourcemanager/apiv3/resourcemanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
)

// Config configures a Server.
type Config struct {
	// Dir is the data directory: Dir/iam.journal holds the hierarchy and
	// the policies (the per-resource JSON files of earlier versions are
	// moved into it). "" keeps everything in memory.
	Dir string
	// Now is the clock used to evaluate conditions in permission checks.
	// Default time.Now.
	Now func() time.Time
	// Members returns the direct members of a group (its email, without the
	// "group:" prefix) as principals, e.g. "user:alice@example.com" or
	// "group:nested@example.com"; nested groups are followed. nil means no
	// group has members, so group bindings never match.
	Members func(ctx context.Context, group string) ([]string, error)
	// Logger receives debug logs of policy writes. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir != "" {
		if fi, err := os.Stat(c.Dir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("data directory %q is not a directory", c.Dir))
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("failed to inspect data directory %q: %w", c.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// Server holds the resource hierarchy and the allow policies.
type Server struct {
	cfg   Config
	log   *slog.Logger
	conds *conditions

	// mu guards the maps and every resource's policy pointer. Stored
	// policies are never modified in place, only replaced, so a pointer read
	// under mu may be used after unlocking.
	mu       sync.RWMutex
	byName   map[string]*resource // canonical name -> resource
	byNumber map[int64]*resource  // project number -> project

	journal *durable.Journal // nil without Dir; see store.go

	aborted atomic.Int64
	writes  atomic.Int64
}

// New returns a Server, loading the resources and policies persisted in
// cfg.Dir, if any.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid localiam config: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	conds, err := newConditions()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		conds:    conds,
		byName:   make(map[string]*resource),
		byNumber: make(map[int64]*resource),
	}
	if err := s.load(); err != nil {
		if s.journal != nil {
			s.journal.Close()
		}
		return nil, err
	}
	return s, nil
}

// Close releases the data directory. Every write is already durable when
// its call returns; a write after Close fails.
func (s *Server) Close() error {
	if s.journal == nil {
		return nil
	}
	if err := s.journal.Close(); err != nil {
		return fmt.Errorf("failed to close the IAM state: %w", err)
	}
	return nil
}

// Register adds the Projects, Folders and Organizations services to g.
func (s *Server) Register(g *grpc.Server) {
	resourcemanagerpb.RegisterProjectsServer(g, projectsServer{s: s})
	resourcemanagerpb.RegisterFoldersServer(g, foldersServer{s: s})
	resourcemanagerpb.RegisterOrganizationsServer(g, organizationsServer{s: s})
}

// AddOrganization adds organizations/id (id is the organization number).
// Adding an existing organization again is a no-op.
func (s *Server) AddOrganization(id string) error {
	return s.add(&resource{kind: kindOrganization, id: id})
}

// AddFolder adds folders/id under parent ("folders/N" or "organizations/N",
// which must exist). Adding the same folder again is a no-op; a different
// parent is an error.
func (s *Server) AddFolder(id, parent string) error {
	if parent == "" {
		return fmt.Errorf("failed to add folder %q: a folder needs a parent", id)
	}
	return s.add(&resource{kind: kindFolder, id: id, parent: parent})
}

// AddProject adds projects/id with its number, under parent ("folders/N",
// "organizations/N" or "" for none). The project is then addressable as
// projects/id and projects/number. Adding the same project again is a no-op;
// a different number or parent is an error.
func (s *Server) AddProject(id string, number int64, parent string) error {
	if number <= 0 {
		return fmt.Errorf("failed to add project %q: number %d must be positive", id, number)
	}
	return s.add(&resource{kind: kindProject, id: id, number: number, parent: parent})
}

func (s *Server) add(r *resource) error {
	name := r.name()
	if k, id, err := splitName(name); err != nil || k != r.kind || (k == kindProject && numberPattern.MatchString(id)) {
		return fmt.Errorf("failed to add %s: invalid id %q", r.kind.collection(), r.id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byName[name]; old != nil {
		if old.number != r.number || old.parent != r.parent {
			return fmt.Errorf("failed to add %s: it exists with number %d and parent %q", name, old.number, old.parent)
		}
		return nil
	}
	if r.parent != "" {
		p := s.byName[r.parent]
		if p == nil || p.kind == kindProject {
			return fmt.Errorf("failed to add %s: parent %q is not a known folder or organization", name, r.parent)
		}
	}
	if r.kind == kindProject {
		if other := s.byNumber[r.number]; other != nil {
			return fmt.Errorf("failed to add %s: number %d belongs to %s", name, r.number, other.name())
		}
	}
	r.policy = emptyPolicy()
	if err := s.persist(r, nil, r.policy); err != nil {
		return err
	}
	s.index(r)
	return nil
}

func (s *Server) index(r *resource) {
	s.byName[r.name()] = r
	if r.kind == kindProject {
		s.byNumber[r.number] = r
	}
}

// lookupLocked finds a resource by canonical name or, for projects, by
// projects/NUMBER. Callers hold mu.
func (s *Server) lookupLocked(name string) *resource {
	k, id, err := splitName(name)
	if err != nil {
		return nil
	}
	if k == kindProject && numberPattern.MatchString(id) {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil
		}
		return s.byNumber[n]
	}
	return s.byName[name]
}

// effectiveLocked returns the bindings on r and its ancestors, r's first.
// Callers hold mu.
func (s *Server) effectiveLocked(r *resource) []*iampb.Binding {
	var out []*iampb.Binding
	for depth := 0; r != nil && depth < 32; depth++ {
		out = append(out, r.policy.GetBindings()...)
		r = s.byName[r.parent]
	}
	return out
}

// Policy returns a copy of the stored policy of resource (any accepted
// name form) in version-3 form, or nil if the resource is unknown.
func (s *Server) Policy(resource string) *iampb.Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.lookupLocked(resource)
	if r == nil {
		return nil
	}
	return proto.Clone(r.policy).(*iampb.Policy)
}

// SetPolicy replaces the policy of resource the way an administrator in the
// console would, for seeding a local world: every rule of SetIamPolicy
// applies except that users may be made project owners (the console's
// invitation flow). An empty etag means last write wins.
func (s *Server) SetPolicy(resource string, p *iampb.Policy) (*iampb.Policy, error) {
	s.mu.RLock()
	r := s.lookupLocked(resource)
	s.mu.RUnlock()
	if r == nil {
		return nil, fmt.Errorf("failed to set the policy of %s: unknown resource", resource)
	}
	np, err := s.checkPolicy(p, r.kind)
	if err != nil {
		return nil, fmt.Errorf("failed to set the policy of %s: %w", resource, err)
	}
	out, err := s.commit(r, p, np, defaultMask(), true)
	if err != nil {
		return nil, fmt.Errorf("failed to set the policy of %s: %w", resource, err)
	}
	return proto.Clone(out).(*iampb.Policy), nil
}

// AbortedCount is how many SetIamPolicy calls were refused with ABORTED
// because of a stale etag.
func (s *Server) AbortedCount() int64 { return s.aborted.Load() }

// WriteCount is how many SetIamPolicy calls succeeded: benchmarks divide
// grants by it.
func (s *Server) WriteCount() int64 { return s.writes.Load() }

// mask is the set of Policy fields a SetIamPolicy call replaces.
type mask struct{ bindings, auditConfigs bool }

// defaultMask is "bindings, etag" (iam_policy.pb.go, SetIamPolicyRequest).
func defaultMask() mask { return mask{bindings: true} }

// commit replaces r's policy with np under mu, after the checks that depend
// on the stored policy: the etag, the version rule and owner invitations.
// It returns the stored policy itself, which is never modified in place:
// the gRPC path only marshals it, so a copy of a large policy per call is
// saved; callers that hand it to Go code copy it.
func (s *Server) commit(r *resource, req, np *iampb.Policy, m mask, console bool) (*iampb.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := r.policy
	if etag := req.GetEtag(); len(etag) > 0 && !bytes.Equal(etag, old.GetEtag()) {
		s.aborted.Add(1)
		return nil, status.Error(codes.Aborted, abortedMessage)
	}
	if m.bindings && req.GetVersion() < 3 && hasConditions(old) {
		// Removing or changing any binding of a policy that contains
		// conditions needs version 3 (docs/google-cloud.md §1). Real message from
		// hashicorp/vault-plugin-secrets-gcp#88. The real service skips this
		// check when no etag is sent and silently drops every condition;
		// this fake refuses that blind write too, because losing conditions
		// quietly is exactly the bug it exists to expose.
		return nil, invalid("Specified policy version (%d) cannot be less than the existing policy version (3). For more information, please refer to https://cloud.google.com/iam/docs/policies#versions", req.GetVersion())
	}
	next := &iampb.Policy{Bindings: old.GetBindings(), AuditConfigs: old.GetAuditConfigs()}
	if m.bindings {
		next.Bindings = np.GetBindings()
	}
	if m.auditConfigs {
		next.AuditConfigs = np.GetAuditConfigs()
	}
	if r.kind == kindProject && !console {
		if invited := newUserOwners(old, next); len(invited) > 0 {
			// projects_client.go SetIamPolicy: a user cannot be granted
			// roles/owner through setIamPolicy (docs/google-cloud.md §2). The real
			// error is INVALID_ARGUMENT "Request contains an invalid
			// argument." with ProjectIamPolicyError details of type
			// SOLO_MUST_INVITE_OWNERS (hashicorp/terraform-provider-google#4276).
			return nil, invalid("Request contains an invalid argument. (type: SOLO_MUST_INVITE_OWNERS, role: roles/owner, members: %s: a user must be invited as owner through the console)", describeMembers(invited))
		}
	}
	next.Version = 1
	if hasConditions(next) {
		next.Version = 3
	}
	next.Etag = newEtag(old.GetEtag())
	if err := s.persist(r, old, next); err != nil {
		return nil, status.Errorf(codes.Internal, "failed to store the policy: %v", err)
	}
	s.writes.Add(1)
	r.policy = next
	s.log.Debug("set IAM policy", "resource", r.name(), "bindings", len(next.GetBindings()), "version", next.GetVersion())
	return next, nil
}

// newUserOwners lists users that next makes owners and old did not: users
// already owners (accepted invitations) may be written back unchanged.
func newUserOwners(old, next *iampb.Policy) []string {
	owners := func(p *iampb.Policy) []string {
		var out []string
		for _, b := range p.GetBindings() {
			if b.GetRole() == "roles/owner" && b.GetCondition() == nil {
				for _, m := range b.GetMembers() {
					if strings.HasPrefix(m, "user:") {
						out = append(out, m)
					}
				}
			}
		}
		return out
	}
	before := map[string]bool{}
	for _, m := range owners(old) {
		before[m] = true
	}
	var invited []string
	for _, m := range owners(next) {
		if !before[m] {
			invited = append(invited, m)
		}
	}
	return invited
}
