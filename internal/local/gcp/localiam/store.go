package localiam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
)

// journalFile holds the hierarchy and the policies as a durable.Journal.
// A policy is stored as one entry per binding plus a small header (etag,
// version, audit configs), and SetIamPolicy writes only the bindings that
// changed with the new header: a grant on a policy of a thousand bindings
// writes one or two bindings, not the thousand.
const journalFile = "iam.journal"

// Journal keys. A binding is identified within its resource by role and
// condition, the pair checkPolicy merges on.
const (
	resourceKey = "resource/" // + name: resourceRec
	headerKey   = "policy/"   // + name: the policy without its bindings
	bindingKey  = "binding/"  // + name + "|" + role + "|" + condition hash
)

// resourceRec is a resource of the hierarchy.
type resourceRec struct {
	Name   string `json:"name"`
	Number int64  `json:"number,omitempty"`
	Parent string `json:"parent,omitempty"`
}

// record is the file of one resource in earlier versions,
// Dir/<collection>/<id>.json, rewritten whole on every SetIamPolicy; load
// moves such files into the journal.
type record struct {
	Name   string          `json:"name"`
	Number int64           `json:"number,omitempty"`
	Parent string          `json:"parent,omitempty"`
	Policy json.RawMessage `json:"policy"`
}

func keyOfBinding(resource string, b *iampb.Binding) string {
	cond := "-"
	if b.GetCondition() != nil {
		cond = conditionHash(b.GetCondition())
	}
	return bindingKey + resource + "|" + b.GetRole() + "|" + cond
}

// persist writes the change from old to next of r's policy (old nil: r is
// new, so the resource is written too) in one journal record; a no-op
// without Dir. Bindings present in both and equal are not written, so the
// bytes written follow the change, not the size of the policy.
func (s *Server) persist(r *resource, old, next *iampb.Policy) error {
	if s.journal == nil {
		return nil
	}
	name := r.name()
	var b durable.Batch
	if old == nil {
		raw, err := json.Marshal(resourceRec{Name: name, Number: r.number, Parent: r.parent})
		if err != nil {
			return fmt.Errorf("failed to encode %s: %w", name, err)
		}
		b.Put(resourceKey+name, raw)
	}
	header, err := protojson.Marshal(&iampb.Policy{Version: next.GetVersion(), Etag: next.GetEtag(), AuditConfigs: next.GetAuditConfigs()})
	if err != nil {
		return fmt.Errorf("failed to encode the policy of %s: %w", name, err)
	}
	b.Put(headerKey+name, header)
	put := func(nb *iampb.Binding) error {
		raw, err := protojson.Marshal(nb)
		if err != nil {
			return fmt.Errorf("failed to encode a binding of %s: %w", name, err)
		}
		b.Put(keyOfBinding(name, nb), raw)
		return nil
	}
	// Both lists are sorted by compareBindings (checkPolicy and load sort
	// them), so one merge walk finds the change without hashing or
	// encoding the bindings that stay.
	ob, nb := old.GetBindings(), next.GetBindings()
	if !slices.IsSortedFunc(ob, compareBindings) || !slices.IsSortedFunc(nb, compareBindings) {
		return fmt.Errorf("failed to persist %s: bindings are not sorted", name)
	}
	for len(ob) > 0 || len(nb) > 0 {
		c := 1 // only old bindings left: deletes
		switch {
		case len(ob) == 0:
			c = -1
		case len(nb) > 0:
			c = compareBindings(nb[0], ob[0])
		}
		switch {
		case c < 0: // added
			if err := put(nb[0]); err != nil {
				return err
			}
			nb = nb[1:]
		case c > 0: // removed
			b.Delete(keyOfBinding(name, ob[0]))
			ob = ob[1:]
		default:
			if !sameBinding(ob[0], nb[0]) {
				if err := put(nb[0]); err != nil {
					return err
				}
			}
			ob, nb = ob[1:], nb[1:]
		}
	}
	if err := s.journal.Apply(&b); err != nil {
		return fmt.Errorf("failed to persist %s: %w", name, err)
	}
	return nil
}

// load opens the journal under Dir, moves legacy per-resource files into
// it, rebuilds every resource and policy and checks the hierarchy.
func (s *Server) load() error {
	if s.cfg.Dir == "" {
		return nil
	}
	j, err := durable.OpenJournal(filepath.Join(s.cfg.Dir, journalFile))
	if err != nil {
		return fmt.Errorf("failed to open the IAM state: %w", err)
	}
	s.journal = j
	if err := s.migrateLegacy(); err != nil {
		return err
	}
	policies := map[string]*iampb.Policy{}
	policyOf := func(name string) *iampb.Policy {
		if policies[name] == nil {
			policies[name] = &iampb.Policy{}
		}
		return policies[name]
	}
	var resources []*resource
	err = j.Range("", func(key string, value []byte) error {
		switch {
		case strings.HasPrefix(key, resourceKey):
			var rec resourceRec
			if err := json.Unmarshal(value, &rec); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			k, id, err := splitName(rec.Name)
			if err != nil {
				return fmt.Errorf("failed to load %s: %w", key, err)
			}
			resources = append(resources, &resource{kind: k, id: id, number: rec.Number, parent: rec.Parent})
		case strings.HasPrefix(key, headerKey):
			p := &iampb.Policy{}
			if err := protojson.Unmarshal(value, p); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			into := policyOf(strings.TrimPrefix(key, headerKey))
			into.Version, into.Etag, into.AuditConfigs = p.GetVersion(), p.GetEtag(), p.GetAuditConfigs()
		case strings.HasPrefix(key, bindingKey):
			name, _, ok := strings.Cut(strings.TrimPrefix(key, bindingKey), "|")
			if !ok {
				return fmt.Errorf("bad binding key %q", key)
			}
			b := &iampb.Binding{}
			if err := protojson.Unmarshal(value, b); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			p := policyOf(name)
			p.Bindings = append(p.Bindings, b)
		default:
			return fmt.Errorf("unknown entry %q", key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to load the IAM state: %w", err)
	}
	for _, r := range resources {
		p := policies[r.name()]
		if len(p.GetEtag()) == 0 {
			return fmt.Errorf("failed to load %s: the policy has no etag", r.name())
		}
		sortBindings(p.Bindings)
		r.policy = p
		if r.kind == kindProject && s.byNumber[r.number] != nil {
			return fmt.Errorf("failed to load %s: project number %d is used twice", r.name(), r.number)
		}
		s.index(r)
	}
	for name := range policies {
		if s.byName[name] == nil {
			return fmt.Errorf("failed to load the IAM state: a policy of %s, which is not a resource", name)
		}
	}
	for _, r := range s.byName {
		if r.parent == "" {
			continue
		}
		if p := s.byName[r.parent]; p == nil || p.kind == kindProject {
			return fmt.Errorf("failed to load %s: parent %q is missing", r.name(), r.parent)
		}
	}
	return nil
}

// migrateLegacy moves each Dir/<collection>/<id>.json of earlier versions
// into the journal, one batch per file, then removes the file. A crash in
// between moves the same file again on the next start, which changes
// nothing.
func (s *Server) migrateLegacy() error {
	for _, k := range []kind{kindOrganization, kindFolder, kindProject} {
		dir := filepath.Join(s.cfg.Dir, k.collection())
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", dir, err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
				continue
			}
			if strings.HasPrefix(e.Name(), ".") {
				_ = os.Remove(p) // a temporary file of durable.WriteFile, left by a kill
				continue
			}
			r, err := readRecord(p)
			if err != nil {
				return err
			}
			if r.kind != k || r.id+".json" != e.Name() {
				return fmt.Errorf("failed to load %s: it holds %s", p, r.name())
			}
			if err := s.persist(r, nil, r.policy); err != nil {
				return fmt.Errorf("failed to move %s into the journal: %w", p, err)
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("failed to remove %s after moving it into the journal: %w", p, err)
			}
		}
		_ = os.Remove(dir) // only if empty
	}
	return nil
}

func readRecord(path string) (*resource, error) {
	var rec record
	if _, err := durable.ReadJSON(path, &rec); err != nil {
		return nil, fmt.Errorf("failed to load a resource: %w", err)
	}
	k, id, err := splitName(rec.Name)
	if err != nil {
		return nil, fmt.Errorf("failed to load %s: %w", path, err)
	}
	p := &iampb.Policy{}
	if err := protojson.Unmarshal(rec.Policy, p); err != nil {
		return nil, fmt.Errorf("failed to decode the policy in %s: %w", path, err)
	}
	if len(p.GetEtag()) == 0 {
		return nil, fmt.Errorf("failed to load %s: the policy has no etag", path)
	}
	return &resource{kind: k, id: id, number: rec.Number, parent: rec.Parent, policy: p}, nil
}
