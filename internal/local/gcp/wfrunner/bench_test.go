package wfrunner

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/benchref"
)

// newPersistedExecution is an ACTIVE execution on a runner over a fresh
// Dir, whose journal already holds steps entries. The runner is not
// started, so nothing interprets it.
func newPersistedExecution(tb testing.TB, dir string, steps int) *execution {
	tb.Helper()
	r, err := New(Config{Project: "p", Location: "l", Dir: dir, CallbackBaseURL: "http://127.0.0.1:1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	rec := &record{
		Name:      r.WorkflowName("bench") + "/executions/" + newID(),
		Workflow:  "bench",
		Source:    "main:\n  steps:\n    - done:\n        return: 1\n",
		State:     stateActive,
		StartTime: time.Now().UTC(),
	}
	ex := r.newExecution(rec)
	if err := ex.saveLocked(saveSet{start: true}); err != nil {
		tb.Fatal(err)
	}
	for i := range steps {
		journalStep(tb, ex, i)
	}
	return ex
}

// journalStep journals one HTTP response, the commonest side effect of the
// grant-lifecycle workflow, and syncs it as the next external effect
// would: the whole cost of a step.
func journalStep(tb testing.TB, ex *execution, i int) {
	v := map[string]any{"code": 200.0, "headers": map[string]any{"Content-Type": "application/json"},
		"body": map[string]any{"grant_id": fmt.Sprintf("g-%06d", i), "state": "ACTIVE"}}
	if err := ex.append(entry{Kind: "http", Value: &storedValue{v}}, "", nil); err != nil {
		tb.Fatalf("append: %v", err)
	}
	if err := ex.r.journal.Sync(); err != nil {
		tb.Fatalf("sync: %v", err)
	}
}

// BenchmarkTableWorkflowStep measures the durable write of one journaled
// step on an execution that has run 10 and 1,000 steps. "ratio" is the cost
// at 1,000 over the cost at 10: near 1 means a step's cost does not grow
// with the execution's history.
func BenchmarkTableWorkflowStep(b *testing.B) {
	short, long := newPersistedExecution(b, b.TempDir(), 10), newPersistedExecution(b, b.TempDir(), 1000)
	i := 0
	benchref.Sizes(b, func() { journalStep(b, short, i) }, func() { journalStep(b, long, i); i++ })
}
