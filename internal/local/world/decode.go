package world

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/groups"
)

// decoder walks the YAML node tree rather than unmarshalling into structs:
// yaml.v3 forgets KnownFields inside nested decoding and keeps no line
// numbers, and every error here must name its line.
type decoder struct {
	errs []error
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, errAt(n.Line, format, args...))
}

// decode builds a World from data, reporting syntax and shape problems.
func decode(data []byte) (*World, []error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []error{fmt.Errorf("failed to parse YAML: %w", err)}
	}
	if len(doc.Content) == 0 {
		return nil, []error{errors.New("the world file is empty")}
	}
	d := &decoder{}
	root := doc.Content[0]
	top := d.fields(root, "", "organization", "folders", "projects", "users", "groups", "bindings")
	w := &World{}
	if n := top["organization"]; n != nil {
		w.Organization = d.organization(n)
	} else if resolve(root).Kind == yaml.MappingNode {
		d.errorf(root, "organization is required")
	}
	for i, n := range d.seq(top["folders"], "folders") {
		w.Folders = append(w.Folders, d.folder(n, fmt.Sprintf("folders[%d]", i)))
	}
	for i, n := range d.seq(top["projects"], "projects") {
		w.Projects = append(w.Projects, d.project(n, fmt.Sprintf("projects[%d]", i)))
	}
	for i, n := range d.seq(top["users"], "users") {
		w.Users = append(w.Users, d.user(n, fmt.Sprintf("users[%d]", i)))
	}
	for i, n := range d.seq(top["groups"], "groups") {
		w.Groups = append(w.Groups, d.group(n, fmt.Sprintf("groups[%d]", i)))
	}
	for i, n := range d.seq(top["bindings"], "bindings") {
		w.Bindings = append(w.Bindings, d.binding(n, fmt.Sprintf("bindings[%d]", i)))
	}
	return w, d.errs
}

func (d *decoder) organization(n *yaml.Node) Organization {
	f := d.fields(n, "organization", "id", "domain", "name")
	return Organization{
		ID:     d.required(n, f, "organization", "id"),
		Domain: emailaddr.Key(d.required(n, f, "organization", "domain")),
		Name:   d.str(f["name"], "organization.name"),
		line:   n.Line,
	}
}

func (d *decoder) folder(n *yaml.Node, path string) Folder {
	f := d.fields(n, path, "id", "name", "parent")
	return Folder{
		ID:     d.required(n, f, path, "id"),
		Name:   d.str(f["name"], path+".name"),
		Parent: d.required(n, f, path, "parent"),
		line:   n.Line,
	}
}

func (d *decoder) project(n *yaml.Node, path string) Project {
	f := d.fields(n, path, "id", "number", "name", "parent")
	p := Project{
		ID:     d.required(n, f, path, "id"),
		Name:   d.str(f["name"], path+".name"),
		Parent: d.str(f["parent"], path+".parent"),
		line:   n.Line,
	}
	if f["number"] == nil {
		if n.Kind == yaml.MappingNode {
			d.errorf(n, "%s.number is required", path)
		}
	} else {
		var ok bool
		p.Number, ok = d.int64(f["number"], path+".number")
		if ok && p.Number <= 0 {
			d.errorf(f["number"], "%s: project number %d must be positive", path, p.Number)
		}
	}
	return p
}

func (d *decoder) user(n *yaml.Node, path string) User {
	f := d.fields(n, path, "email", "name", "hostedDomain")
	u := User{
		Email: groups.Normalize(d.required(n, f, path, "email")),
		Name:  d.str(f["name"], path+".name"),
		line:  n.Line,
	}
	if hd := f["hostedDomain"]; hd != nil {
		u.HostedDomain, u.hdSet = emailaddr.Key(d.str(hd, path+".hostedDomain")), true
	}
	return u
}

func (d *decoder) group(n *yaml.Node, path string) Group {
	f := d.fields(n, path, "email", "name", "members")
	members, lines := d.members(f["members"], path+".members")
	return Group{
		Email:   groups.Normalize(d.required(n, f, path, "email")),
		Name:    d.str(f["name"], path+".name"),
		Members: members,
		line:    n.Line,
		lines:   lines,
	}
}

func (d *decoder) binding(n *yaml.Node, path string) Binding {
	f := d.fields(n, path, "resource", "role", "members", "condition")
	members, lines := d.members(f["members"], path+".members")
	b := Binding{
		Resource: d.required(n, f, path, "resource"),
		Role:     d.required(n, f, path, "role"),
		Members:  members,
		line:     n.Line,
		lines:    lines,
	}
	if n.Kind == yaml.MappingNode && len(b.Members) == 0 && len(d.seq(f["members"], "")) == 0 {
		d.errorf(n, "%s.members: a binding needs at least one member", path)
	}
	if c := f["condition"]; c != nil {
		cp := path + ".condition"
		cf := d.fields(c, cp, "title", "description", "expression")
		b.Condition = &Condition{
			Title:       d.required(c, cf, cp, "title"),
			Description: d.str(cf["description"], cp+".description"),
			Expression:  d.required(c, cf, cp, "expression"),
		}
	}
	return b
}

// members decodes a list of principals, lower-casing the part after the
// type and checking their syntax. References are checked by validate.
func (d *decoder) members(n *yaml.Node, path string) ([]string, map[string]int) {
	var out []string
	lines := map[string]int{}
	for i, m := range d.seq(n, path) {
		raw := d.str(m, fmt.Sprintf("%s[%d]", path, i))
		if raw == "" {
			continue
		}
		member, err := canonicalMember(raw)
		if err != nil {
			d.errorf(m, "%s[%d]: %v", path, i, err)
			continue
		}
		if slices.Contains(out, member) {
			d.errorf(m, "%s[%d]: duplicate member %q", path, i, member)
			continue
		}
		out = append(out, member)
		lines[member] = resolve(m).Line
	}
	return out, lines
}

// fields checks that n is a mapping with only the known keys, each once,
// and returns the value nodes by key. A non-mapping yields no fields.
func (d *decoder) fields(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	n = resolve(n)
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping with fields %s", orTop(path), strings.Join(known, ", "))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(path, k.Value)
		switch {
		case !slices.Contains(known, k.Value):
			d.errorf(k, "unknown field %s (want one of %s)", name, strings.Join(known, ", "))
		case out[k.Value] != nil:
			d.errorf(k, "duplicate field %s", name)
		default:
			out[k.Value] = v
		}
	}
	return out
}

// required returns field key of the mapping n as a non-empty string.
func (d *decoder) required(n *yaml.Node, f map[string]*yaml.Node, path, key string) string {
	v := f[key]
	if v == nil {
		if resolve(n).Kind == yaml.MappingNode { // else fields reported the shape
			d.errorf(n, "%s is required", join(path, key))
		}
		return ""
	}
	s := d.str(v, join(path, key))
	if s == "" && resolve(v).Kind == yaml.ScalarNode {
		d.errorf(v, "%s must not be empty", join(path, key))
	}
	return s
}

// str decodes a scalar string; numbers are accepted as their text, so that
// unquoted ids work. A missing node is "".
func (d *decoder) str(n *yaml.Node, path string) string {
	if n == nil {
		return ""
	}
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!null") {
		d.errorf(n, "%s: want a string", path)
		return ""
	}
	if n.Tag == "!!null" {
		return ""
	}
	// ASCII blanks only: Unicode trimming would turn a look-alike address
	// (a trailing U+00A0, say) into someone's real one unnoticed.
	return strings.Trim(n.Value, " \t\r\n")
}

func (d *decoder) int64(n *yaml.Node, path string) (int64, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!str") {
		d.errorf(n, "%s: want an integer", path)
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64)
	if err != nil {
		d.errorf(n, "%s: want an integer, got %q", path, n.Value)
		return 0, false
	}
	return v, true
}

// seq returns the items of a sequence; a missing or null node is empty.
func (d *decoder) seq(n *yaml.Node, path string) []*yaml.Node {
	if n == nil {
		return nil
	}
	n = resolve(n)
	switch {
	case n.Kind == yaml.SequenceNode:
		return n.Content
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil
	}
	if path != "" {
		d.errorf(n, "%s: want a list", path)
	}
	return nil
}

// resolve follows aliases (&anchor / *alias).
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "the world file"
	}
	return path
}
