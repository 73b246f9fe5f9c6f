package localiam_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
)

// grants is a policy of n time-bound grants, one user each.
func grants(n int) *iampb.Policy {
	p := &iampb.Policy{Version: 3}
	for i := range n {
		p.Bindings = append(p.Bindings, condBinding("roles/compute.admin",
			jitCondition(t0, t0.Add(time.Duration(i+1)*time.Minute)), fmt.Sprintf("user:u%04d@example.com", i)))
	}
	return p
}

func journalSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, "iam.journal"))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The bytes one SetIamPolicy adds to the state on disk follow the change,
// not the size of the policy (issue 14: the whole policy file used to be
// rewritten on every write).
func TestWriteBytesFlat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(p *iampb.Policy)
	}{
		{name: "replace_a_grant", change: func(p *iampb.Policy) {
			p.Bindings[3].Condition = jitCondition(t0, t0.Add(48*time.Hour))
		}},
		{name: "add_a_grant", change: func(p *iampb.Policy) {
			p.Bindings = append(p.Bindings, condBinding("roles/compute.admin", jitCondition(t0, t0.Add(72*time.Hour)), "user:new@example.com"))
		}},
		{name: "remove_a_grant", change: func(p *iampb.Policy) {
			p.Bindings = p.Bindings[1:]
		}},
		{name: "add_a_member", change: func(p *iampb.Policy) {
			p.Bindings[5].Members = append(p.Bindings[5].Members, "user:also@example.com")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			written := func(bindings int) int64 {
				dir := t.TempDir()
				e := newEnv(t, localiam.Config{Dir: dir})
				c := e.client(t, project, "")
				p := set(t, c, project, grants(bindings))
				before := journalSize(t, dir)
				tc.change(p)
				set(t, c, project, p)
				return journalSize(t, dir) - before
			}
			small, large := written(10), written(1000)
			if small <= 0 || large > small+small/5 {
				t.Errorf("the write took %d bytes on a policy of 10 bindings and %d on 1,000; want about the same", small, large)
			}
		})
	}
}

// A kill while a policy was written leaves a torn last record: the server
// reloads with the policy before it, etag included, and accepts writes.
func TestTornPolicyWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, localiam.Config{Dir: dir})
	c := e.client(t, project, "")
	want := set(t, c, project, grants(20))
	next := set(t, c, project, grants(25))
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "iam.journal"), journalSize(t, dir)-5); err != nil {
		t.Fatal(err)
	}

	again := newEnv(t, localiam.Config{Dir: dir})
	if diff := cmp.Diff(want, again.srv.Policy(project), protocmp.Transform()); diff != "" {
		t.Errorf("policy after a torn write (-want, +got):\n%s", diff)
	}
	c = again.client(t, project, "")
	next.Etag = want.GetEtag()
	set(t, c, project, next)
}

// A data directory of an earlier version, one JSON file per resource,
// still loads: the files move into the journal.
func TestLoadsLegacyResourceFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{
		"organizations/1.json": `{"name": "organizations/1", "policy": {"version": 1, "etag": "BwAAAAAAAAE="}}`,
		"projects/legacy.json": `{"name": "projects/legacy", "number": 7007, "parent": "organizations/1",
		  "policy": {"version": 1, "etag": "BwAAAAAAAAI=", "bindings": [{"role": "roles/browser", "members": ["user:a@example.com"]}]}}`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := &iampb.Policy{Version: 1, Etag: []byte{7, 0, 0, 0, 0, 0, 0, 2}, Bindings: []*iampb.Binding{binding("roles/browser", "user:a@example.com")}}
	for round := range 2 { // the second start reads the journal alone
		srv, err := localiam.New(localiam.Config{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: New: %v", round, err)
		}
		if diff := cmp.Diff(want, srv.Policy("projects/7007"), protocmp.Transform()); diff != "" {
			t.Errorf("round %d: policy (-want, +got):\n%s", round, diff)
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		for name := range files {
			if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
				t.Errorf("round %d: %s still there: %v", round, name, err)
			}
		}
	}
}
