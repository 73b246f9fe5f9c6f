package source_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/policy/source"
)

const goodPolicy = `schemaVersion: 1
environment:
  name: prod
  systems:
    - name: sys
      groups:
        - name: grp
          access:
            - {principal: "user:ann@example.com", allow: "JOIN, APPROVE_SELF"}
          constraints:
            join:
              - {type: expiry, min: PT1H, max: PT8H}
`

// The rule, end to end with the real parser: an edited file is
// picked up without a restart; a broken edit is refused with an error event
// and the last good policy stays in force.
func TestPolicyFileReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(goodPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	loader, err := source.NewFileLoader(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	var events []source.Rejection
	src, err := source.New(t.Context(), source.Config[*policy.Policy]{
		Loader:  loader,
		Compile: policy.Compile,
		TTL:     10 * time.Second,
		Now:     func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		OnReject: func(_ context.Context, r source.Rejection) {
			events = append(events, r)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	advance := func() { mu.Lock(); now = now.Add(11 * time.Second); mu.Unlock() }
	ann := policy.NewSubject("ann@example.com", nil, true)

	// A good edit: Ann loses APPROVE_SELF, seen after the TTL without a restart.
	if err := os.WriteFile(path, []byte(strings.Replace(goodPolicy, "JOIN, APPROVE_SELF", "JOIN", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	advance()
	pol, v1, _ := src.Current(t.Context())
	if a, _ := pol.Check(ann, "prod.sys.grp"); a.SelfApprove || !a.Join {
		t.Fatalf("after a good edit: %+v", a)
	}

	// A broken edit: refused once, with the lint issues; the last good stays.
	if err := os.WriteFile(path, []byte(strings.Replace(goodPolicy, "max: PT8H", "max: forever", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	advance()
	pol, v2, _ := src.Current(t.Context())
	advance()
	_, v3, _ := src.Current(t.Context()) // the same broken file again: not reported twice
	if v2 != v1 || v3 != v1 || len(events) != 1 || !strings.Contains(events[0].Err.Error(), "CONSTRAINT_INVALID_EXPIRY") || events[0].KeptVersion != v1 {
		t.Fatalf("broken edit: versions %q, %q (want %q), events %+v", v2, v3, v1, events)
	}
	if a, _ := pol.Check(ann, "prod.sys.grp"); !a.Join {
		t.Errorf("the last good policy is not in force: %+v", a)
	}
}
