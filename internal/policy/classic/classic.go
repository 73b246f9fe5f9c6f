// Package classic turns JIT Access 1.x eligible role bindings into
// entitlements, so deployments that marked bindings in IAM keep working
// unchanged (docs/jit-access.md §1.1, §1.2, §3.8).
//
// A binding whose condition has a top-level && clause
// has({}.jitAccessConstraint) makes its members eligible to activate the
// role themselves (JOIN + APPROVE_SELF); has({}.multiPartyApprovalConstraint)
// makes them eligible with approval by a peer holding the same eligible
// binding (JOIN + APPROVE_OTHERS). Markers are recognised in any case and
// spacing; a top-level || makes a binding not eligible. The other clauses
// form a resource condition carried into the grant's condition, and each
// distinct resource condition is its own entitlement. A role eligible both
// ways shows once and is self-approved.
//
// Each scanned resource becomes a system of the "classic" environment, each
// eligible role a group, granted on the resource where the eligible binding
// is (projects, and also folders and organizations, which JIT Access 1.x
// could not do). Scope lists the resources to scan: bindings elsewhere are
// not seen.
package classic

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/googleapis/gax-go/v2"

	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/policy"
)

// IAMClient is the slice of the Resource Manager v3 clients classic mode
// needs; *resourcemanager.ProjectsClient, FoldersClient and
// OrganizationsClient satisfy it as they are.
type IAMClient interface {
	GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error)
}

// Config configures the scan. Defaults follow JIT Access 1.x.
type Config struct {
	// Scope lists the resources whose IAM policies are scanned:
	// projects/ID, folders/ID, organizations/ID.
	Scope []string
	// Projects, Folders and Organizations read policies of each kind.
	Projects, Folders, Organizations IAMClient
	// Environment names the environment (default "classic").
	Environment string
	// MaxDuration is ACTIVATION_TIMEOUT (default 2 hours); the minimum is
	// one minute, as in JIT Groups' classic environment.
	MaxDuration time.Duration
	// JustificationPattern must fully match a justification (default ".*",
	// JIT Access's JUSTIFICATION_PATTERN); JustificationHint describes it.
	JustificationPattern string
	JustificationHint    string
	// Admins get RECONCILE and EXPORT on the environment.
	Admins []string
	Logger *slog.Logger
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Scope) == 0 {
		errs = append(errs, errors.New("Scope must list at least one resource"))
	}
	for _, r := range c.Scope {
		if _, err := policy.ResourceName(r, false); err != nil || !strings.Contains(r, "/") {
			errs = append(errs, fmt.Errorf("Scope: %q is not projects/ID, folders/ID or organizations/ID", r))
		}
	}
	if c.Projects == nil || c.Folders == nil || c.Organizations == nil {
		errs = append(errs, errors.New("Projects, Folders and Organizations clients are required"))
	}
	if c.MaxDuration < 0 || (c.MaxDuration > 0 && c.MaxDuration < time.Minute) {
		errs = append(errs, fmt.Errorf("MaxDuration must be at least one minute, got %v", c.MaxDuration))
	}
	if c.JustificationPattern != "" {
		if _, err := regexp.Compile(c.JustificationPattern); err != nil {
			errs = append(errs, fmt.Errorf("JustificationPattern: %w", err))
		}
	}
	for _, a := range c.Admins {
		if _, err := policy.ParsePrincipal(a); err != nil {
			errs = append(errs, fmt.Errorf("Admins: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Load scans the scope and builds the classic environment's policy.
func Load(ctx context.Context, cfg Config) (*policy.Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid classic mode config: %w", err)
	}
	if cfg.Environment == "" {
		cfg.Environment = "classic"
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = 2 * time.Hour
	}
	if cfg.JustificationPattern == "" {
		cfg.JustificationPattern = ".*"
	}
	if cfg.JustificationHint == "" {
		cfg.JustificationHint = "Bug or case number"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	justification, err := policy.NewExpression("justification", "Justification: "+cfg.JustificationHint,
		fmt.Sprintf("input.justification.matches(%q)", "^(?:"+cfg.JustificationPattern+")$"),
		[]policy.Variable{{Type: policy.StringVar, Name: "justification", DisplayName: cfg.JustificationHint, Min: 1, Max: 100}})
	if err != nil {
		return nil, fmt.Errorf("failed to compile the justification constraint: %w", err)
	}
	env := &policy.Environment{}
	env.Name = cfg.Environment
	env.Description = "Eligible role bindings marked in IAM (JIT Access 1.x)"
	env.Join = []policy.Constraint{policy.Expiry{Min: time.Minute, Max: cfg.MaxDuration}, justification}
	for _, a := range cfg.Admins {
		p, _ := policy.ParsePrincipal(a)
		env.ACL = append(env.ACL, policy.ACE{Principal: p, Mask: policy.Reconcile | policy.Export})
	}
	for _, resource := range cfg.Scope {
		sys, err := scan(ctx, cfg, resource)
		if err != nil {
			return nil, err
		}
		if len(sys.Groups) > 0 {
			env.Systems = append(env.Systems, sys)
		}
	}
	return policy.Build(env)
}

func scan(ctx context.Context, cfg Config, resource string) (*policy.System, error) {
	client := cfg.Projects
	switch {
	case strings.HasPrefix(resource, "folders/"):
		client = cfg.Folders
	case strings.HasPrefix(resource, "organizations/"):
		client = cfg.Organizations
	}
	// Version 3, or conditional bindings come back stripped (docs/google-cloud.md §1).
	pol, err := client.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{
		Resource: resource,
		Options:  &iampb.GetPolicyOptions{RequestedPolicyVersion: 3},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read the IAM policy of %s: %w", resource, err)
	}
	sys := &policy.System{}
	sys.Name = strings.ReplaceAll(resource, "/", "-")
	sys.Description = resource
	byKey := map[string]*policy.Group{}
	for _, b := range pol.GetBindings() {
		expr := b.GetCondition().GetExpression()
		if expr == "" {
			continue
		}
		marker, resCond, err := iamcond.EligibilityErr(expr)
		if err != nil {
			if !errors.Is(err, iamcond.ErrNoMarker) {
				cfg.Logger.WarnContext(ctx, "binding not eligible", "resource", resource, "role", b.GetRole(), "error", err)
			}
			continue
		}
		key := b.GetRole() + "\x00" + resCond
		g := byKey[key]
		if g == nil {
			g = &policy.Group{Privileges: []policy.Privilege{{Resource: resource, Role: b.GetRole(), Condition: resCond}}}
			g.Name = groupName(b.GetRole(), resCond)
			g.Description = b.GetRole() + " on " + resource
			if resCond != "" {
				g.Description += " (" + resCond + ")"
			}
			byKey[key] = g
		}
		mask := policy.Join | policy.ApproveSelf
		if marker == iamcond.MPA {
			mask = policy.Join | policy.ApproveOthers
		}
		for _, m := range b.GetMembers() {
			p, err := policy.ParsePrincipal(m)
			if err != nil || (p.Type != policy.UserPrincipal && p.Type != policy.GroupPrincipal) {
				continue // service accounts and the like cannot request access
			}
			g.ACL = append(g.ACL, policy.ACE{Principal: p, Mask: mask})
		}
	}
	for _, g := range byKey {
		if len(g.ACL) > 0 {
			sys.Groups = append(sys.Groups, g)
		}
	}
	sort.Slice(sys.Groups, func(i, j int) bool { return sys.Groups[i].Name < sys.Groups[j].Name })
	return sys, nil
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
