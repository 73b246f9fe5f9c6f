package wfrunner

import (
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sys.get_env answers from the environment fixed when the execution
// started, as a revision fixes it on Google Cloud, and journals nothing:
// each journal entry is a durable write on the critical path. A runner
// restarted with other variables does not change a running execution's.
func TestGetEnvIsFixedAtStartAndNotJournaled(t *testing.T) {
	t.Parallel()
	r := &Runner{cfg: Config{Project: "p", Location: "us-central1", Env: map[string]string{"JIT_TOPIC": "first", "GOOGLE_CLOUD_PROJECT_ID": "spoofed"}}}
	rec := &record{Name: "projects/p/locations/us-central1/workflows/w/executions/e1", Workflow: "w", RevisionID: "000001-abc"}
	rec.Env = r.env(rec)
	r.cfg.Env = map[string]string{"JIT_TOPIC": "second"}
	ex := &execution{r: r, rec: rec}
	var got []any
	for _, name := range []string{"JIT_TOPIC", "GOOGLE_CLOUD_PROJECT_ID", "GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID", "UNSET"} {
		v, err := ex.getEnv(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if diff := cmp.Diff([]any{"first", "p", "e1", nil}, got); diff != "" {
		t.Errorf("get_env (-want +got):\n%s", diff)
	}
	if len(rec.Journal) != 0 {
		t.Errorf("get_env journaled %d entries", len(rec.Journal))
	}
}

// The environment fixed at the start is stored with the execution, so a
// restarted runner replays it with the same answers (a journal without
// get_env entries cannot fall back to journaled ones).
func TestEnvSurvivesARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ex := newPersistedExecution(t, dir, 0)
	ex.rec.Env = map[string]string{"JIT_TOPIC": "first"}
	if err := ex.saveLocked(saveSet{start: true}); err != nil {
		t.Fatal(err)
	}
	if err := ex.r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Project: "p", Location: "l", Dir: dir, CallbackBaseURL: "http://127.0.0.1:1", Env: map[string]string{"JIT_TOPIC": "second"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, err := readRecords(r.journal)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"JIT_TOPIC": "first"}, recs[ex.rec.Name].Env); diff != "" {
		t.Errorf("env after a restart (-want +got):\n%s", diff)
	}
}
