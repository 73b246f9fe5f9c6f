package world

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// lineError is one problem in a world file, at a line (0 if none).
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string {
	if e.line == 0 {
		return e.msg
	}
	return fmt.Sprintf("line %d: %s", e.line, e.msg)
}

func errAt(line int, format string, args ...any) error {
	return &lineError{line: line, msg: fmt.Sprintf(format, args...)}
}

// sortByLine orders problems as they appear in the file.
func sortByLine(errs []error) {
	line := func(err error) int {
		var le *lineError
		if errors.As(err, &le) {
			return le.line
		}
		return 0
	}
	slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(line(a), line(b)) })
}

var (
	// Resource Manager syntax, as localiam checks it: numbers for
	// organizations and folders; project IDs of 6 to 30 lowercase letters,
	// digits or hyphens, starting with a letter, not ending with a hyphen.
	numberPattern    = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)
	projectIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	rolePattern      = regexp.MustCompile(`^(roles|projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/roles|organizations/[0-9]+/roles)/[a-zA-Z0-9_.]{1,100}$`)
)

// validate checks ids, uniqueness and references, reporting every problem.
func (w *World) validate() []error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }

	org := w.Organization
	if org.ID != "" && !numberPattern.MatchString(org.ID) {
		add(errAt(org.line, "organization.id %q is not an organization number", org.ID))
	}
	if org.Domain != "" && !validDomain(org.Domain) {
		add(errAt(org.line, "organization.domain %q is not a domain", org.Domain))
	}

	// Containers that can parent something: the organization and folders.
	containers := map[string]bool{org.ResourceName(): true}
	folderLine := map[string]int{}
	for _, f := range w.Folders {
		if f.ID == "" {
			continue // reported as missing
		}
		if !numberPattern.MatchString(f.ID) {
			add(errAt(f.line, "folder id %q is not a folder number", f.ID))
		}
		if prev, dup := folderLine[f.ID]; dup {
			add(errAt(f.line, "folder %s is already defined at line %d", f.ID, prev))
			continue
		}
		folderLine[f.ID] = f.line
		containers[f.ResourceName()] = true
	}
	for _, f := range w.Folders {
		if f.ID != "" && f.Parent != "" && !containers[f.Parent] {
			add(errAt(f.line, "folder %s: parent %q is not the organization or a folder of this world", f.ID, f.Parent))
		}
	}
	if cycle := w.folderCycle(); cycle != nil {
		add(errAt(folderLine[cycle[0]], "folders form a cycle: %s", strings.Join(cycle, " -> ")))
	}

	projectLine := map[string]int{}
	numberOf := map[int64]string{}
	for _, p := range w.Projects {
		if p.ID == "" {
			continue // reported as missing
		}
		if !projectIDPattern.MatchString(p.ID) {
			add(errAt(p.line, "project id %q is not a project ID (6 to 30 lowercase letters, digits or hyphens, starting with a letter)", p.ID))
		}
		if other, dup := numberOf[p.Number]; dup && p.Number > 0 {
			add(errAt(p.line, "project %s: number %d already belongs to project %s", p.ID, p.Number, other))
		} else if p.Number > 0 {
			numberOf[p.Number] = p.ID
		}
		if prev, dup := projectLine[p.ID]; dup {
			add(errAt(p.line, "project %s is already defined at line %d", p.ID, prev))
		} else {
			projectLine[p.ID] = p.line
		}
		if p.Parent != "" && !containers[p.Parent] {
			add(errAt(p.line, "project %s: parent %q is not the organization or a folder of this world", p.ID, p.Parent))
		}
	}

	userLine := map[string]int{}
	for _, u := range w.Users {
		if u.Email == "" {
			continue // reported as missing
		}
		if !validEmail(u.Email) {
			add(errAt(u.line, "user email %q is not an email address", u.Email))
		}
		if u.hdSet && u.HostedDomain != NoHostedDomain && !validDomain(u.HostedDomain) {
			add(errAt(u.line, "user %s: hostedDomain %q is neither a domain nor %q", u.Email, u.HostedDomain, NoHostedDomain))
		}
		if prev, dup := userLine[u.Email]; dup {
			add(errAt(u.line, "user %s is already defined at line %d", u.Email, prev))
			continue
		}
		userLine[u.Email] = u.line
	}
	groupLine := map[string]int{}
	for _, g := range w.Groups {
		if g.Email == "" {
			continue // reported as missing
		}
		if !validEmail(g.Email) {
			add(errAt(g.line, "group email %q is not an email address", g.Email))
		}
		if prev, dup := groupLine[g.Email]; dup {
			add(errAt(g.line, "group %s is already defined at line %d", g.Email, prev))
			continue
		}
		if prev, dup := userLine[g.Email]; dup {
			add(errAt(g.line, "group %s has the email of the user defined at line %d", g.Email, prev))
		}
		groupLine[g.Email] = g.line
	}

	// known reports whether a user: or group: member is declared.
	known := func(member string) error {
		typ, email, _ := strings.Cut(member, ":")
		switch {
		case typ == "user" && userLine[email] == 0:
			return fmt.Errorf("member %s is not a user of this world (declare it under users)", member)
		case typ == "group" && groupLine[email] == 0:
			return fmt.Errorf("member %s is not a group of this world (declare it under groups)", member)
		}
		return nil
	}
	for _, g := range w.Groups {
		for _, m := range g.Members {
			if strings.HasPrefix(m, "domain:") {
				add(errAt(g.lines[m], "group %s: member %s: a domain cannot be a group member", g.Email, m))
			} else if err := known(m); err != nil {
				add(errAt(g.lines[m], "group %s: %v", g.Email, err))
			}
		}
	}

	resources := map[string]bool{org.ResourceName(): true}
	for id := range folderLine {
		resources["folders/"+id] = true
	}
	for id := range projectLine {
		resources["projects/"+id] = true
	}
	for _, b := range w.Bindings {
		if b.Resource != "" && !resources[b.Resource] {
			add(errAt(b.line, "binding resource %q is not the organization, a folder or a project of this world", b.Resource))
		}
		if b.Role != "" && !rolePattern.MatchString(b.Role) {
			add(errAt(b.line, "binding role %q is not a role name (roles/…, projects/P/roles/… or organizations/N/roles/…)", b.Role))
		}
		for _, m := range b.Members {
			if err := known(m); err != nil {
				add(errAt(b.lines[m], "binding of %s on %s: %v", b.Role, b.Resource, err))
			}
		}
	}
	return errs
}

// folderCycle returns folder ids forming a parent cycle, or nil.
func (w *World) folderCycle() []string {
	parent := map[string]string{}
	for _, f := range w.Folders {
		if id, ok := strings.CutPrefix(f.Parent, "folders/"); ok {
			parent[f.ID] = id
		}
	}
	ids := make([]string, 0, len(parent))
	for id := range parent {
		ids = append(ids, id)
	}
	slices.Sort(ids) // report the same cycle every time
	for _, start := range ids {
		var path []string
		at := map[string]int{}
		for id := start; id != ""; id = parent[id] {
			if i, seen := at[id]; seen {
				return append(path[i:], id)
			}
			at[id] = len(path)
			path = append(path, id)
		}
	}
	return nil
}

// canonicalMember checks a principal's syntax and lower-cases its email.
func canonicalMember(m string) (string, error) {
	typ, value, ok := strings.Cut(m, ":")
	if !ok || value == "" {
		return "", fmt.Errorf("member %q: want user:EMAIL, group:EMAIL, serviceAccount:EMAIL or domain:DOMAIN", m)
	}
	value = emailaddr.Key(value) // ASCII case only: look-alikes stay invalid
	switch typ {
	case "user", "group":
		if !validEmail(value) {
			return "", fmt.Errorf("member %q: not an email address", m)
		}
	case "serviceAccount":
		if !validEmail(value) || !strings.HasSuffix(value, ".gserviceaccount.com") {
			return "", fmt.Errorf("member %q: not a service account email (…@….gserviceaccount.com)", m)
		}
	case "domain":
		if !validDomain(value) {
			return "", fmt.Errorf("member %q: not a domain", m)
		}
	default:
		return "", fmt.Errorf("member %q: unknown type %q: want user, group, serviceAccount or domain", m, typ)
	}
	return typ + ":" + value, nil
}

// validEmail accepts canonical addresses (package emailaddr) without
// quotes, which the Cloud Identity queries could not carry either.
func validEmail(s string) bool {
	return emailaddr.Valid(s) && !strings.ContainsRune(s, '\'')
}

func validDomain(s string) bool { return emailaddr.CheckDomain(s) == nil }
