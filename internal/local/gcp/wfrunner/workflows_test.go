package wfrunner

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	executionspb "cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
)

// want is the sidecar testdata/<name>.want.json of a workflow document.
type want struct {
	Argument     json.RawMessage `json:"argument"`
	Result       json.RawMessage `json:"result"`
	ErrorTags    []string        `json:"error_tags"`
	ErrorPayload json.RawMessage `json:"error_payload"`
	LoadError    string          `json:"load_error"`
	LogContains  []string        `json:"log_contains"`
	PubSub       []struct {
		Data       string            `json:"data"`
		Attributes map[string]string `json:"attributes"`
	} `json:"pubsub"`
}

// TestWorkflows runs every testdata/*.yaml through Deploy and the real
// executions client, and compares the outcome with its .want.json. The
// behaviours each document checks are cited in the document's comments or
// in the runner code it exercises (docs/google-cloud.md §4 for the language, retry
// predicates, callbacks, sleeps, limits and connector errors; §5 and §11 for
// the Pub/Sub and Cloud Tasks wiring).
func TestWorkflows(t *testing.T) {
	t.Parallel()
	// 100× real time: the documents' sleeps, awaits and backoffs take
	// real-looking values and still finish in milliseconds.
	clk := clock.Scaled(time.Now(), 100)
	te := newTestEnv(t, envOptions{clock: clk})
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 35 {
		t.Fatalf("only %d workflow documents", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".want.json")
			if err != nil {
				t.Fatal(err)
			}
			var w want
			if err := json.Unmarshal(raw, &w); err != nil {
				t.Fatalf("bad sidecar: %v", err)
			}
			err = te.runner.Deploy(name, src)
			if w.LoadError != "" {
				if err == nil || !strings.Contains(err.Error(), w.LoadError) {
					t.Fatalf("Deploy error = %v, want it to contain %q", err, w.LoadError)
				}
				return
			}
			if err != nil {
				t.Fatalf("Deploy: %v", err)
			}
			arg := string(w.Argument)
			topic := "projects/" + testProject + "/topics/" + name
			if strings.Contains(arg, "$TOPIC") {
				te.createTopic(t, topic)
			}
			arg = strings.NewReplacer(
				"$HTTP", te.fixture.base,
				"$DEADURL", te.deadURL,
				"$TOPIC", topic,
				"$SOON", clk.Now().Add(20*time.Second).UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
			).Replace(arg)
			created, err := te.client.CreateExecution(t.Context(), &executionspb.CreateExecutionRequest{
				Parent:    te.runner.WorkflowName(name),
				Execution: &executionspb.Execution{Argument: arg},
			})
			if err != nil {
				t.Fatalf("CreateExecution: %v", err)
			}
			got := waitDone(t, te.client, created.GetName())
			checkOutcome(t, got, w)
			for _, s := range w.LogContains {
				if !strings.Contains(te.logs.text(), s) {
					t.Errorf("logs do not contain %q:\n%s", s, te.logs.text())
				}
			}
			if w.PubSub != nil {
				type msg struct {
					Data       string
					Attributes map[string]string
				}
				var gotMsgs, wantMsgs []msg
				for _, m := range te.pubsub.Messages() {
					if m.Topic == topic {
						gotMsgs = append(gotMsgs, msg{string(m.Data), m.Attributes})
					}
				}
				for _, m := range w.PubSub {
					wantMsgs = append(wantMsgs, msg{m.Data, m.Attributes})
				}
				if diff := cmp.Diff(wantMsgs, gotMsgs, cmp.Comparer(func(a, b map[string]string) bool {
					return len(a) == len(b) && cmp.Equal(a, b) || len(a) == 0 && len(b) == 0
				})); diff != "" {
					t.Errorf("published messages (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func checkOutcome(t *testing.T, got *executionspb.Execution, w want) {
	t.Helper()
	if w.Result != nil {
		if got.GetState() != executionspb.Execution_SUCCEEDED {
			t.Fatalf("state = %v, error = %v; want SUCCEEDED", got.GetState(), got.GetError())
		}
		var wantV, gotV any
		if err := json.Unmarshal(w.Result, &wantV); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(got.GetResult()), &gotV); err != nil {
			t.Fatalf("result %q is not JSON: %v", got.GetResult(), err)
		}
		if diff := cmp.Diff(wantV, gotV); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		return
	}
	if got.GetState() != executionspb.Execution_FAILED {
		t.Fatalf("state = %v, result = %s; want FAILED", got.GetState(), got.GetResult())
	}
	if got.GetResult() != "" {
		t.Errorf("a FAILED execution has result %q", got.GetResult())
	}
	var payload any
	if err := json.Unmarshal([]byte(got.GetError().GetPayload()), &payload); err != nil {
		t.Fatalf("error payload %q is not JSON: %v", got.GetError().GetPayload(), err)
	}
	if w.ErrorTags != nil {
		var gotTags []string
		if m, ok := payload.(map[string]any); ok {
			tags, _ := m["tags"].([]any)
			for _, tg := range tags {
				gotTags = append(gotTags, tg.(string))
			}
		}
		if diff := cmp.Diff(w.ErrorTags, gotTags); diff != "" {
			t.Errorf("error tags (-want +got):\n%s\npayload: %s", diff, got.GetError().GetPayload())
		}
	}
	if w.ErrorPayload != nil {
		var wantP any
		if err := json.Unmarshal(w.ErrorPayload, &wantP); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantP, payload); diff != "" {
			t.Errorf("error payload (-want +got):\n%s", diff)
		}
	}
}
