// Package classic turns JIT Access 1.x eligible role bindings into
// entitlements, so deployments that marked bindings in IAM keep working
// unchanged (docs/jit-access.md §1.1, §1.2, §3.8; docs/migrate-from-jit-access.md).
//
// A binding whose condition has a top-level && clause
// has({}.jitAccessConstraint) makes its members eligible to activate the
// role themselves (JOIN + APPROVE_SELF); has({}.multiPartyApprovalConstraint)
// makes them eligible with approval by a peer holding the same eligible
// binding (JOIN + APPROVE_OTHERS). Markers are recognised in any case and
// spacing; a top-level || makes a binding not eligible, and so does a
// marker that only appears inside a string literal. The other clauses
// form a resource condition carried into the grant's condition, and each
// distinct resource condition is its own entitlement. A role eligible both
// ways shows once and is self-approved.
//
// As in JIT Access, eligibility is found on projects, folders and
// organizations of the scope, is inherited downward, and is always
// activated on a project: each project under the scope becomes a system
// of the "classic" environment (named by its project ID), each eligible
// role there a group granting the role on that project.
//
// Finding the bindings needs no Policy Analyzer (and so no Security
// Command Center subscription): a Catalog lists the scope's folders and
// projects through Resource Manager, reads their allow policies, and keeps
// them in a cache it refreshes piece by piece (catalog.go).
package classic

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/lazyregexp"
	"github.com/jitpipeline/jit/internal/policy"
)

// Config configures the catalog. Defaults follow JIT Access 1.x
// (docs/jit-access.md §2.1); each option says its JIT Access name.
type Config struct {
	// Scope lists the resources whose eligible bindings count, with every
	// folder and project below them: projects/ID, folders/N,
	// organizations/N (RESOURCE_SCOPE; several allowed, unlike JIT Access).
	Scope []string
	// Hierarchy lists folders and projects (ResourceManager); Projects,
	// Folders and Organizations read each kind's allow policy.
	Hierarchy                        Hierarchy
	Projects, Folders, Organizations IAMClient
	// Environment names the environment (default "classic").
	Environment string
	// MaxDuration is ACTIVATION_TIMEOUT (default 2 hours); the minimum is
	// one minute, as in JIT Access 1.8.
	MaxDuration time.Duration
	// JustificationPattern must match a whole justification (default
	// ".*", JUSTIFICATION_PATTERN; RE2 syntax, not Java's);
	// JustificationHint describes it (JUSTIFICATION_HINT, default "Bug or
	// case number").
	JustificationPattern string
	JustificationHint    string
	// MaxRoles is ACTIVATION_REQUEST_MAX_ROLES (default 10).
	MaxRoles int
	// RequestTimeout is ACTIVATION_REQUEST_TIMEOUT (default 1 hour): how
	// long a peer-approved request waits for its reviewers; it never
	// exceeds MaxDuration, as in JIT Access.
	RequestTimeout time.Duration
	// MinReviewers and MaxReviewers are ACTIVATION_REQUEST_MIN_REVIEWERS
	// and ACTIVATION_REQUEST_MAX_REVIEWERS (defaults 1 and 10).
	MinReviewers, MaxReviewers int
	// MaxAge is how old a cached allow policy or folder listing may be
	// when entitlements are listed (default 5 minutes, as
	// RESOURCE_CACHE_TIMEOUT in JIT Groups). Decisions never use the
	// cache: they read the policies that decide them.
	MaxAge time.Duration
	// Concurrency bounds the reads in flight during a refresh (default 16).
	Concurrency int
	// ReadsPerSecond bounds the Resource Manager calls of one catalog
	// (default 5; negative: no bound). Resource Manager allows a consumer
	// project 10 reads and 10 lists a second, 600 a minute, shared by
	// every instance of every function and by the grant function's
	// read-modify-writes (docs/google-cloud.md §1): half of it leaves the
	// rest room. RESOURCE_EXHAUSTED and UNAVAILABLE answers are retried
	// with backoff.
	ReadsPerSecond float64
	// ListingWait is how long a listing waits for a refresh under way
	// before it answers with what the catalog has (default 8 seconds,
	// under the 10 s a person waits for a page).
	ListingWait time.Duration
	// Admins get RECONCILE and EXPORT on the environment.
	Admins []string
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	err := c.ValidateOptions()
	if c.Hierarchy == nil || c.Projects == nil || c.Folders == nil || c.Organizations == nil {
		err = errors.Join(err, errors.New("Hierarchy and the Projects, Folders and Organizations clients are required"))
	}
	return err
}

// ValidateOptions reports every problem with the settings, leaving out
// the clients: what a deployment's configuration check can see.
func (c *Config) ValidateOptions() error {
	var errs []error
	if len(c.Scope) == 0 {
		errs = append(errs, errors.New("Scope must list at least one resource"))
	}
	for _, r := range c.Scope {
		if !validResource(r) {
			errs = append(errs, fmt.Errorf("Scope: %q is not projects/ID, folders/N or organizations/N", r))
		}
	}
	if c.MaxDuration < 0 || (c.MaxDuration > 0 && c.MaxDuration < time.Minute) {
		errs = append(errs, fmt.Errorf("MaxDuration (ACTIVATION_TIMEOUT) must be at least one minute, got %v", c.MaxDuration))
	}
	if c.RequestTimeout < 0 || (c.RequestTimeout > 0 && c.RequestTimeout < time.Minute) {
		errs = append(errs, fmt.Errorf("RequestTimeout (ACTIVATION_REQUEST_TIMEOUT) must be at least one minute, got %v", c.RequestTimeout))
	}
	if c.JustificationPattern != "" {
		if _, err := regexp.Compile(c.JustificationPattern); err != nil {
			errs = append(errs, fmt.Errorf("JustificationPattern (JUSTIFICATION_PATTERN): %w", err))
		}
	}
	if c.MaxRoles < 0 {
		errs = append(errs, fmt.Errorf("MaxRoles (ACTIVATION_REQUEST_MAX_ROLES) must be positive, got %d", c.MaxRoles))
	}
	if c.MinReviewers < 0 || c.MaxReviewers < 0 {
		errs = append(errs, fmt.Errorf("MinReviewers and MaxReviewers must be positive, got %d and %d", c.MinReviewers, c.MaxReviewers))
	} else if c.MaxReviewers > 0 && max(c.MinReviewers, 1) > c.MaxReviewers {
		errs = append(errs, fmt.Errorf("MinReviewers (ACTIVATION_REQUEST_MIN_REVIEWERS) %d exceeds MaxReviewers (ACTIVATION_REQUEST_MAX_REVIEWERS) %d", c.MinReviewers, c.MaxReviewers))
	}
	if c.MaxAge < 0 || c.Concurrency < 0 || c.ListingWait < 0 {
		errs = append(errs, errors.New("MaxAge, Concurrency and ListingWait must not be negative"))
	}
	for _, a := range c.Admins {
		if _, err := policy.ParsePrincipal(a); err != nil {
			errs = append(errs, fmt.Errorf("Admins: %w", err))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills in JIT Access's defaults.
func (c Config) withDefaults() Config {
	if c.Environment == "" {
		c.Environment = "classic"
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = 2 * time.Hour
	}
	if c.JustificationPattern == "" {
		c.JustificationPattern = ".*"
	}
	if c.JustificationHint == "" {
		c.JustificationHint = "Bug or case number"
	}
	if c.MaxRoles == 0 {
		c.MaxRoles = 10
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Hour
	}
	c.RequestTimeout = min(c.RequestTimeout, c.MaxDuration)
	if c.MinReviewers == 0 {
		c.MinReviewers = 1
	}
	if c.MaxReviewers == 0 {
		c.MaxReviewers = max(10, c.MinReviewers)
	}
	if c.MaxAge == 0 {
		c.MaxAge = 5 * time.Minute
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.ReadsPerSecond == 0 {
		c.ReadsPerSecond = 5
	}
	if c.ListingWait == 0 {
		c.ListingWait = 8 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// scopeRE is a scope resource: a project by ID (6 to 30 characters,
// lower-case letters, digits and hyphens, starting with a letter), a
// folder or an organization by number.
var scopeRE = lazyregexp.New(`^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]|folders/[0-9]+|organizations/[0-9]+)$`)

func validResource(r string) bool { return scopeRE.MatchString(r) }

// MaxJustification is JIT Access's limit: a justification shorter than
// 100 characters (docs/jit-access.md §1.6).
const MaxJustification = 99

// environment returns the classic environment's root, without systems:
// the constraints and options JIT Access applies to every activation.
func environment(cfg Config) (*policy.Environment, error) {
	justification, err := policy.NewExpression("justification", "Justification does not meet criteria: "+cfg.JustificationHint,
		fmt.Sprintf("input.justification.matches(%q)", "^(?:"+cfg.JustificationPattern+")$"),
		[]policy.Variable{{Type: policy.StringVar, Name: "justification", DisplayName: cfg.JustificationHint, Min: 1, Max: MaxJustification}})
	if err != nil {
		return nil, fmt.Errorf("failed to compile the justification constraint: %w", err)
	}
	env := &policy.Environment{Classic: &policy.Classic{MaxRoles: cfg.MaxRoles, MinReviewers: cfg.MinReviewers, MaxReviewers: cfg.MaxReviewers}}
	env.Name = cfg.Environment
	env.Description = "Eligible role bindings marked in IAM (JIT Access 1.x)"
	env.Join = []policy.Constraint{policy.Expiry{Min: time.Minute, Max: cfg.MaxDuration}, justification}
	// One approval from a chosen peer, within the request's lifetime.
	env.Approve = []policy.Constraint{policy.Approvals{Required: 1, Window: cfg.RequestTimeout}}
	for _, a := range cfg.Admins {
		p, _ := policy.ParsePrincipal(a)
		env.ACL = append(env.ACL, policy.ACE{Principal: p, Mask: policy.Reconcile | policy.Export})
	}
	return env, nil
}

// groupName names an entitlement after its role, as JIT Groups' classic
// environment does (roles/compute.admin → compute-admin; custom roles get a
// p- or o- prefix), plus a short hash of the resource condition, if any.
func groupName(role, resCond string) string {
	var name string
	switch {
	case strings.HasPrefix(role, "roles/"):
		name = strings.TrimPrefix(role, "roles/")
	case strings.HasPrefix(role, "projects/"):
		parts := strings.Split(role, "/")
		name = "p-" + parts[1] + "-" + parts[len(parts)-1]
	case strings.HasPrefix(role, "organizations/"):
		parts := strings.Split(role, "/")
		name = "o-" + parts[1] + "-" + parts[len(parts)-1]
	default:
		name = role
	}
	name = strings.NewReplacer(".", "-", "_", "-").Replace(name)
	if resCond != "" {
		sum := sha256.Sum256([]byte(resCond))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	return name
}
