// Package world describes the local demo organisation the embedded pipeline
// runs against: its resource hierarchy, users, groups and initial IAM
// bindings, read from a YAML "world file".
//
// On Google Cloud these come from Resource Manager and Cloud Identity; locally
// the world file stands in for both. Seed creates the hierarchy and initial
// bindings in the local IAM (localiam); Resolver answers group membership
// like the Cloud Identity resolver of package groups does.
//
// # Format
//
//	organization:                     # required
//	  id: "100000000001"              # organization number
//	  domain: example.com             # primary domain: its users are internal
//	  name: Example Inc.              # optional display name
//	folders:                          # parents before or after children, any order
//	  - id: "200000000001"            # folder number, unique
//	    name: production              # optional display name
//	    parent: organizations/100000000001   # or folders/N
//	projects:
//	  - id: demo-prod                 # project ID, unique
//	    number: 300000000001          # project number, unique
//	    name: Demo production         # optional display name
//	    parent: folders/200000000001  # organizations/N, folders/N or omitted
//	users:                            # internal and external users
//	  - email: alice@example.com
//	    name: Alice                   # optional
//	groups:
//	  - email: sre@example.com
//	    name: SRE                     # optional
//	    members: [user:alice@example.com, group:oncall@example.com,
//	              serviceAccount:bot@demo-prod.iam.gserviceaccount.com]
//	bindings:                         # initial IAM bindings (see Seed)
//	  - resource: projects/demo-prod  # organizations/N, folders/N or projects/ID
//	    role: roles/compute.viewer
//	    members: [group:sre@example.com]   # user:, group:, serviceAccount:, domain:
//	    condition:                    # optional
//	      title: Eligible for JIT access
//	      description: optional
//	      expression: has({}.jitAccessConstraint)
//
// Unknown fields are refused. Every user: and group: member must be declared
// in users or groups (this catches typos); serviceAccount: and domain:
// members need not be. Emails are compared case-insensitively and stored
// lower-cased. Groups may contain each other in cycles; membership is still
// finite. Parse reports every problem at once, each with its line.
package world

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/groups"
)

// World is a parsed, valid world file. Treat it as read-only once in use:
// the membership index is built on first use.
type World struct {
	Organization Organization
	Folders      []Folder
	Projects     []Project
	Users        []User
	Groups       []Group
	Bindings     []Binding

	indexOnce sync.Once
	idx       *index
}

// Organization is the root of the hierarchy.
type Organization struct {
	ID     string // organization number
	Domain string // primary domain, lower-cased
	Name   string
	line   int
}

// ResourceName is "organizations/ID".
func (o Organization) ResourceName() string { return "organizations/" + o.ID }

// Folder is a folder under the organization or another folder.
type Folder struct {
	ID     string // folder number
	Name   string
	Parent string // organizations/N or folders/N
	line   int
}

// ResourceName is "folders/ID".
func (f Folder) ResourceName() string { return "folders/" + f.ID }

// Project is a project under the organization or a folder, or standalone.
type Project struct {
	ID     string
	Number int64
	Name   string
	Parent string // organizations/N, folders/N or ""
	line   int
}

// ResourceName is "projects/ID".
func (p Project) ResourceName() string { return "projects/" + p.ID }

// User is a person who can sign in: internal (an account of the
// organization's domain) or external.
type User struct {
	Email string // lower-cased
	Name  string
	// HostedDomain is the account's Google Workspace or Cloud Identity
	// domain, what IAP's hd claim would say: from the file's hostedDomain,
	// or by default the organization's domain for addresses in it, ""
	// otherwise. NoHostedDomain in the file (a consumer account) is "".
	HostedDomain string
	hdSet        bool
	line         int
}

// NoHostedDomain, as a user's hostedDomain, declares a consumer account:
// one with no hosted domain, whatever its address says.
const NoHostedDomain = "none"

// Group is a group of users, service accounts and other groups.
type Group struct {
	Email   string // lower-cased
	Name    string
	Members []string // user:EMAIL, group:EMAIL or serviceAccount:EMAIL, lower-cased
	line    int
	lines   map[string]int // member -> line
}

// Binding is an initial IAM binding.
type Binding struct {
	Resource  string // organizations/N, folders/N or projects/ID
	Role      string
	Members   []string // lower-cased emails
	Condition *Condition
	line      int
	lines     map[string]int // member -> line
}

// Condition is an IAM condition.
type Condition struct {
	Title       string
	Description string
	Expression  string
}

//go:embed demo.yaml
var demoYAML []byte

// Default returns the embedded demo world (demo.yaml): organization
// example.com with folders, projects, internal and external users, nested
// groups and JIT Access eligibility bindings. Each call returns a new World.
func Default() *World {
	w, err := Parse(demoYAML)
	if err != nil {
		panic(fmt.Sprintf("embedded demo world is invalid: %v", err)) // caught by tests
	}
	return w
}

// DefaultYAML returns the source of the demo world, e.g. as a starting point
// for one's own world file.
func DefaultYAML() []byte { return slices.Clone(demoYAML) }

// Load reads and parses a world file.
func Load(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read world file: %w", err)
	}
	w, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("invalid world file %s: %w", path, err)
	}
	return w, nil
}

// Parse parses and validates a world file, reporting every problem.
func Parse(data []byte) (*World, error) {
	w, errs := decode(data)
	if w == nil {
		return nil, errors.Join(errs...)
	}
	// Validate even a partly decoded file, so that one run shows every
	// problem; empty values were already reported as missing.
	errs = append(errs, w.validate()...)
	if len(errs) > 0 {
		sortByLine(errs)
		return nil, errors.Join(errs...)
	}
	return w, nil
}

// HostedDomain is the directory's answer for email: the hosted domain of
// the declared user with that (canonical) address, "" for anyone else —
// an address alone proves nothing, even one in the organization's domain.
// Its signature is lifecycle.Callers.Directory.
func (w *World) HostedDomain(_ context.Context, email string) string {
	if !emailaddr.Valid(email) {
		return ""
	}
	u, ok := w.index().users[groups.Normalize(email)]
	switch {
	case !ok:
		return ""
	case u.hdSet && u.HostedDomain == NoHostedDomain:
		return ""
	case u.hdSet:
		return u.HostedDomain
	}
	if _, domain, _ := strings.Cut(u.Email, "@"); domain == w.Organization.Domain {
		return w.Organization.Domain
	}
	return ""
}

// IsInternal reports whether email is an account of the organization's
// domain (class:internalUsers, as opposed to class:externalUsers;
// docs/jit-access.md §3.3), by the directory (HostedDomain), never by the
// address's suffix: an undeclared address in the domain is external.
func (w *World) IsInternal(email string) bool {
	return w.Organization.Domain != "" && w.HostedDomain(context.Background(), email) == w.Organization.Domain
}

// Resolver answers group membership from the world's groups: transitive,
// cycle-safe and case-insensitive.
func (w *World) Resolver() groups.Resolver { return resolver{w.index()} }

// DirectMembers returns the direct members of group as IAM principals
// ("user:…", "group:…", "serviceAccount:…"), nil for an unknown group. Its
// signature is localiam.Config.Members, so the local IAM sees the same
// groups the pipeline does.
func (w *World) DirectMembers(ctx context.Context, group string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.Clone(w.index().members[groups.Normalize(group)]), nil
}

// UserEmails lists the addresses of the world's users, in its order (the
// local user picker offers them).
func (w *World) UserEmails() []string {
	out := make([]string, 0, len(w.Users))
	for _, u := range w.Users {
		out = append(out, u.Email)
	}
	return out
}
