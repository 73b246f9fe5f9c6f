package localiam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/jitpipeline/jit/internal/local/gcp/durable"
	"google.golang.org/protobuf/encoding/protojson"
)

// record is the file of one resource: Dir/<collection>/<id>.json. The policy
// is protojson so the file reads like the REST API's JSON.
type record struct {
	Name   string          `json:"name"`
	Number int64           `json:"number,omitempty"`
	Parent string          `json:"parent,omitempty"`
	Policy json.RawMessage `json:"policy"`
}

func (s *Server) path(r *resource) string {
	return filepath.Join(s.cfg.Dir, r.kind.collection(), r.id+".json")
}

// persist writes r with policy p atomically; a no-op without Dir.
func (s *Server) persist(r *resource, p *iampb.Policy) error {
	if s.cfg.Dir == "" {
		return nil
	}
	pj, err := protojson.Marshal(p)
	if err != nil {
		return fmt.Errorf("failed to encode the policy of %s: %w", r.name(), err)
	}
	rec := record{Name: r.name(), Number: r.number, Parent: r.parent, Policy: pj}
	if err := durable.WriteJSON(s.path(r), rec); err != nil {
		return fmt.Errorf("failed to persist %s: %w", r.name(), err)
	}
	return nil
}

// load reads every resource file under Dir and checks the hierarchy.
func (s *Server) load() error {
	if s.cfg.Dir == "" {
		return nil
	}
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
			// Skip durable's temporary files (".name.tmp-*") left by a kill.
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
				continue
			}
			r, err := readRecord(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if r.kind != k || r.id+".json" != e.Name() {
				return fmt.Errorf("failed to load %s: it holds %s", filepath.Join(dir, e.Name()), r.name())
			}
			if r.kind == kindProject && s.byNumber[r.number] != nil {
				return fmt.Errorf("failed to load %s: project number %d is used twice", r.name(), r.number)
			}
			s.index(r)
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
