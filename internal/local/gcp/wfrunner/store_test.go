package wfrunner

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The bytes and fsyncs of one step do not grow with the execution's
// history (issue 14: the whole record used to be rewritten per step).
func TestStepCostFlat(t *testing.T) {
	t.Parallel()
	perStep := func(history int) (bytes, appends int64) {
		ex := newPersistedExecution(t, t.TempDir(), history)
		before := ex.r.journal.Stats()
		journalStep(t, ex, history)
		after := ex.r.journal.Stats()
		return after.AppendedBytes - before.AppendedBytes, after.Syncs - before.Syncs
	}
	shortBytes, shortAppends := perStep(10)
	longBytes, longAppends := perStep(1000)
	if shortAppends != 1 || longAppends != 1 {
		t.Errorf("a step took %d and %d fsyncs; want 1", shortAppends, longAppends)
	}
	if longBytes > shortBytes+8 {
		t.Errorf("a step wrote %d bytes after 10 steps and %d after 1,000; want about the same", shortBytes, longBytes)
	}
}

// A kill while a step was journaled leaves a torn last record: the
// execution reloads with the steps before it, and the runner opens.
func TestTornLastStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ex := newPersistedExecution(t, dir, 5)
	name := ex.rec.Name
	if err := ex.r.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, journalFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Project: "p", Location: "l", Dir: dir, CallbackBaseURL: "http://127.0.0.1:1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New after a torn step: %v", err)
	}
	defer r.Close()
	recs, err := readRecords(r.journal)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(recs[name].Journal); got != 4 {
		t.Errorf("journal entries after a torn fifth = %d, want 4", got)
	}
}

// A data directory of an earlier version, one JSON file per execution,
// still loads: the files move into the journal.
func TestLoadsLegacyExecutionFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := "projects/p/locations/l/workflows/old/executions/11111111-2222-4333-8444-555555555555"
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	legacy := record{
		Name: name, Workflow: "old", RevisionID: "000001-abc", Source: "main:\n  steps:\n    - done:\n        return: 1\n",
		Argument: `{"a":1}`, State: stateSucceeded, Result: "1", StartTime: start, EndTime: start.Add(time.Minute),
		Journal:   []entry{{Kind: "http", Value: &storedValue{map[string]any{"code": 200.0}}}},
		Callbacks: map[string]*callbackRec{"cb1": {Method: "POST"}},
	}
	raw, err := json.Marshal(legacy)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "executions", "old", "11111111-2222-4333-8444-555555555555.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second start reads the journal alone
		r, err := New(Config{Project: "p", Location: "l", Dir: dir, CallbackBaseURL: "http://127.0.0.1:1", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(t.Context()); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		ex := r.lookup(name)
		if ex == nil {
			t.Fatalf("round %d: execution not loaded", round)
		}
		got, _ := json.Marshal(ex.rec)
		if diff := cmp.Diff(string(raw), string(got)); diff != "" {
			t.Errorf("round %d: record (-want, +got):\n%s", round, diff)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("round %d: legacy file still there: %v", round, err)
		}
	}
}

// Entries are deferred, and an external effect syncs every one of them
// before it runs: a callback URL or an earlier answer it carries out of
// the execution is on disk first.
func TestExternalEffectsSyncFirst(t *testing.T) {
	t.Parallel()
	ex := newPersistedExecution(t, t.TempDir(), 0)
	if _, err := ex.effect("sys.now", func() (any, error) { return 1.0, nil }); err != nil {
		t.Fatal(err)
	}
	// (Unless durable.DeferWindow passed meanwhile, the entry waits.)
	var unsynced int64 = -1
	if _, err := ex.effect("connector", func() (any, error) {
		unsynced = ex.r.journal.Stats().Unsynced
		return "published", nil
	}); err != nil {
		t.Fatal(err)
	}
	if unsynced != 0 {
		t.Errorf("the connector ran with %d journal records not on disk", unsynced)
	}
	if s := ex.r.journal.Stats(); s.Unsynced != 1 && s.Syncs < 2 {
		t.Errorf("the connector's answer: %d unsynced records, %d syncs; want it deferred", s.Unsynced, s.Syncs)
	}
}

// A revision's source is journaled once, not with every execution, and
// each execution reloads with it.
func TestSourceKeptOncePerRevision(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newPersistedExecution(t, dir, 0)
	b := a.r.newExecution(&record{Name: a.r.WorkflowName("bench") + "/executions/" + newID(), Workflow: "bench", Source: a.rec.Source, State: stateActive, StartTime: time.Now().UTC()})
	if err := b.saveLocked(saveSet{start: true}); err != nil {
		t.Fatal(err)
	}
	copies := 0
	if err := a.r.journal.Range("", func(_ string, v []byte) error {
		copies += strings.Count(string(v), "return: 1")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if copies != 1 {
		t.Errorf("the source is journaled %d times for two executions of one revision, want once", copies)
	}
	recs, err := readRecords(a.r.journal)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{a.rec.Name, b.rec.Name} {
		if got := recs[name].Source; got != a.rec.Source {
			t.Errorf("%s reloads with source %q, want %q", name, got, a.rec.Source)
		}
	}
}
