package ledgertest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/iamqueue"
)

// OpenQueue returns a new, empty IAM write queue whose times run on clk;
// it registers any Close with t.Cleanup.
type OpenQueue func(t *testing.T, clk clock.Clock) iamqueue.Queue

// RunQueue runs the contract suite of iamqueue.Queue (its doc comments),
// every test in parallel on a queue of its own.
func RunQueue(t *testing.T, open OpenQueue) {
	tests := []struct {
		name string
		fn   func(*testing.T, iamqueue.Queue, *clock.Manual)
	}{
		{"PutPending", testQueuePutPending},
		{"DoneOutcome", testQueueDoneOutcome},
		{"OutcomeExpires", testQueueOutcomeExpires},
		{"Lease", testQueueLease},
		{"LastWrite", testQueueLastWrite},
		{"LeaseConcurrent", testQueueLeaseConcurrent},
		{"Invalid", testQueueInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewManual(Start)
			tt.fn(t, open(t, clk), clk)
		})
	}
}

const (
	queueProject = "projects/proj-alpha"
	queueFolder  = "folders/10"
)

func mustPut(t *testing.T, q iamqueue.Queue, resource, id, changes string) {
	t.Helper()
	if err := q.Put(t.Context(), resource, id, []byte(changes)); err != nil {
		t.Fatalf("Put(%s, %s): %v", resource, id, err)
	}
}

func pendingIDs(t *testing.T, q iamqueue.Queue, resource string, limit int) []string {
	t.Helper()
	entries, err := q.Pending(t.Context(), resource, limit)
	if err != nil {
		t.Fatalf("Pending(%s, %d): %v", resource, limit, err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.ID+"="+string(e.Changes))
	}
	return ids
}

// outcomeOf renders Outcome's answer: "pending", "done", "done: ERR" or
// "unknown".
func outcomeOf(t *testing.T, q iamqueue.Queue, resource, id string) string {
	t.Helper()
	o, err := q.Outcome(t.Context(), resource, id)
	switch {
	case errors.Is(err, iamqueue.ErrUnknown):
		return "unknown"
	case err != nil:
		t.Fatalf("Outcome(%s, %s): %v", resource, id, err)
	case !o.Done:
		return "pending"
	case o.Err != "":
		return "done: " + o.Err
	}
	return "done"
}

func mustDone(t *testing.T, q iamqueue.Queue, resource string, results map[string]string, wrote bool) {
	t.Helper()
	if err := q.Done(t.Context(), resource, results, wrote); err != nil {
		t.Fatalf("Done(%s, %v): %v", resource, results, err)
	}
}

// testQueuePutPending: entries come back oldest first, per resource, up to
// the limit; a repeated Put changes nothing.
func testQueuePutPending(t *testing.T, q iamqueue.Queue, clk *clock.Manual) {
	// IDs out of alphabetical order: the order is the order of Put.
	for _, id := range []string{"c-1", "a_2", "b-3", "A-4"} {
		mustPut(t, q, queueProject, id, `[{"id":"`+id+`"}]`)
		clk.Advance(time.Microsecond)
	}
	mustPut(t, q, queueFolder, "a_2", "folder")
	mustPut(t, q, queueProject, "a_2", "again") // ignored
	tests := []struct {
		resource string
		limit    int
		want     []string
	}{
		{queueProject, 10, []string{`c-1=[{"id":"c-1"}]`, `a_2=[{"id":"a_2"}]`, `b-3=[{"id":"b-3"}]`, `A-4=[{"id":"A-4"}]`}},
		{queueProject, 2, []string{`c-1=[{"id":"c-1"}]`, `a_2=[{"id":"a_2"}]`}},
		{queueFolder, 10, []string{"a_2=folder"}},
		{"organizations/1", 10, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, pendingIDs(t, q, tt.resource, tt.limit)); diff != "" {
			t.Errorf("Pending(%s, %d) (-want +got):\n%s", tt.resource, tt.limit, diff)
		}
	}
}

// testQueueDoneOutcome: Done takes entries off the queue; the first
// outcome stands; reading a done outcome deletes it; a done ID is not
// queued again.
func testQueueDoneOutcome(t *testing.T, q iamqueue.Queue, _ *clock.Manual) {
	for _, id := range []string{"e1", "e2", "e3"} {
		mustPut(t, q, queueProject, id, id)
	}
	mustPut(t, q, queueFolder, "e1", "folder e1")
	mustDone(t, q, queueProject, map[string]string{"e1": "", "e2": `{"code":3}`, "never-put": ""}, true)
	mustDone(t, q, queueProject, map[string]string{"e2": "second outcome"}, false)
	mustPut(t, q, queueProject, "e2", "put again")

	if diff := cmp.Diff([]string{"e3=e3"}, pendingIDs(t, q, queueProject, 10)); diff != "" {
		t.Errorf("Pending after Done (-want +got):\n%s", diff)
	}
	steps := []struct {
		resource, id, want string
	}{
		{queueProject, "e3", "pending"},
		{queueProject, "e1", "done"},
		{queueProject, "e1", "unknown"}, // read once
		{queueProject, "e2", `done: {"code":3}`},
		{queueProject, "e2", "unknown"},
		{queueProject, "never-put", "unknown"},
		{queueFolder, "e1", "pending"}, // resources are apart
	}
	for i, s := range steps {
		if got := outcomeOf(t, q, s.resource, s.id); got != s.want {
			t.Errorf("step %d: Outcome(%s, %s) = %s, want %s", i, s.resource, s.id, got, s.want)
		}
	}
}

// testQueueOutcomeExpires: an outcome nobody reads is deleted by a Done
// on its resource once OutcomeTTL has passed, so the queue does not grow
// with callers that died.
func testQueueOutcomeExpires(t *testing.T, q iamqueue.Queue, clk *clock.Manual) {
	mustPut(t, q, queueProject, "old", "x")
	mustPut(t, q, queueProject, "young", "x")
	mustDone(t, q, queueProject, map[string]string{"old": ""}, false)
	clk.Advance(iamqueue.OutcomeTTL / 2)
	mustDone(t, q, queueProject, map[string]string{"young": ""}, false)
	clk.Advance(iamqueue.OutcomeTTL/2 + time.Second)
	mustPut(t, q, queueProject, "new", "x")
	mustDone(t, q, queueProject, map[string]string{"new": ""}, false)
	for id, want := range map[string]string{"old": "unknown", "young": "done", "new": "done"} {
		if got := outcomeOf(t, q, queueProject, id); got != want {
			t.Errorf("Outcome(%s) = %s, want %s", id, got, want)
		}
	}
}

type leaseStep struct {
	advance  time.Duration
	op       string // "lease" or "release"
	resource string
	holder   string
	want     bool // of a lease: held
}

// testQueueLease: one holder at a time per resource; renewals; expiry to
// the nanosecond; a release by someone else does nothing.
func testQueueLease(t *testing.T, q iamqueue.Queue, clk *clock.Manual) {
	const d = 15 * time.Second
	steps := []leaseStep{
		{0, "lease", queueProject, "h1", true},
		{0, "lease", queueProject, "h2", false},
		{0, "lease", queueFolder, "h2", true}, // resources are apart
		{d - 1, "lease", queueProject, "h2", false},
		{0, "lease", queueProject, "h1", true}, // renewed until +2d-1
		{d - 1, "lease", queueProject, "h2", false},
		{0, "release", queueProject, "h2", false}, // not h2's: nothing happens
		{0, "lease", queueProject, "h2", false},
		{1, "lease", queueProject, "h2", true}, // h1's lease expired
		{0, "lease", queueProject, "h1", false},
		{0, "release", queueProject, "h2", false},
		{0, "lease", queueProject, "h1", true},
		{0, "release", queueProject, "h1", false},
		{0, "release", queueProject, "h1", false}, // twice is harmless
		{0, "lease", queueProject, "h3", true},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		switch s.op {
		case "lease":
			l, err := q.Lease(t.Context(), s.resource, s.holder, d)
			if err != nil {
				t.Fatalf("step %d: Lease(%s, %s): %v", i, s.resource, s.holder, err)
			}
			if l.Held != s.want {
				t.Errorf("step %d (at +%v): Lease(%s, %s).Held = %v, want %v", i, clk.Now().Sub(Start), s.resource, s.holder, l.Held, s.want)
			}
		case "release":
			if err := q.Release(t.Context(), s.resource, s.holder); err != nil {
				t.Fatalf("step %d: Release(%s, %s): %v", i, s.resource, s.holder, err)
			}
		}
	}
}

// testQueueLastWrite: every Lease answer, held or not, reports the time
// since the last write recorded on the resource, across holders and
// releases.
func testQueueLastWrite(t *testing.T, q iamqueue.Queue, clk *clock.Manual) {
	since := func(holder string) time.Duration {
		t.Helper()
		l, err := q.Lease(t.Context(), queueProject, holder, time.Minute)
		if err != nil {
			t.Fatalf("Lease: %v", err)
		}
		return l.SinceWrite
	}
	if got := since("h1"); got != iamqueue.NeverWritten {
		t.Errorf("SinceWrite before any write = %v, want NeverWritten", got)
	}
	mustDone(t, q, queueProject, nil, true)
	clk.Advance(30 * time.Millisecond)
	if got := since("h2"); got != 30*time.Millisecond {
		t.Errorf("SinceWrite for a waiter = %v, want 30ms", got)
	}
	if err := q.Release(t.Context(), queueProject, "h1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Millisecond)
	if got := since("h2"); got != 50*time.Millisecond {
		t.Errorf("SinceWrite for the next holder = %v, want 50ms", got)
	}
	mustDone(t, q, queueProject, nil, false) // no write: the time stays
	clk.Advance(time.Millisecond)
	if got := since("h2"); got != 51*time.Millisecond {
		t.Errorf("SinceWrite after a Done without a write = %v, want 51ms", got)
	}
	mustDone(t, q, queueFolder, nil, true)
	if got := since("h2"); got != 51*time.Millisecond {
		t.Errorf("SinceWrite after another resource's write = %v, want 51ms", got)
	}
}

// testQueueLeaseConcurrent: of 20 simultaneous Lease calls by different
// holders exactly one gets it, for a new resource and for an expired
// lease.
func testQueueLeaseConcurrent(t *testing.T, q iamqueue.Queue, clk *clock.Manual) {
	race := func(round string) {
		const n = 20
		count := Winners(t, round, n, func(i int) (bool, error) {
			l, err := q.Lease(t.Context(), queueProject, fmt.Sprintf("%s-h%d", round, i), time.Minute)
			return l.Held, err
		})
		if count != 1 {
			t.Errorf("%s: %d of %d concurrent Lease calls got it, want 1", round, count, n)
		}
	}
	race("new")
	clk.Advance(time.Minute)
	race("expired")
}

func testQueueInvalid(t *testing.T, q iamqueue.Queue, _ *clock.Manual) {
	for _, bad := range []struct {
		name string
		err  error
	}{
		{"Put to a bad resource", q.Put(t.Context(), "projects/a/b", "id", nil)},
		{"Put with a bad ID", q.Put(t.Context(), queueProject, "a/b", nil)},
		{"Put with an empty ID", q.Put(t.Context(), queueProject, "", nil)},
		{"Lease of zero", func() error { _, err := q.Lease(t.Context(), queueProject, "h", 0); return err }()},
		{"Lease with a bad holder", func() error { _, err := q.Lease(t.Context(), queueProject, "h h", time.Second); return err }()},
		{"Pending with limit 0", func() error { _, err := q.Pending(t.Context(), queueProject, 0); return err }()},
	} {
		if bad.err == nil {
			t.Errorf("%s succeeded", bad.name)
		}
	}
	if got := pendingIDs(t, q, queueProject, 10); got != nil {
		t.Errorf("refused calls queued %v", got)
	}
}
