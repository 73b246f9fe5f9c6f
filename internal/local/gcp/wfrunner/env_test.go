package wfrunner

import (
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
