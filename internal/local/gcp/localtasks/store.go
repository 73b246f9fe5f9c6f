package localtasks

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
)

// stateFile is the one file that holds the whole state. It is rewritten
// atomically on every mutation, which is simple and crash-safe; the local
// pipeline holds tens of tasks, not millions.
const stateFile = "cloudtasks.json"

type diskState struct {
	Queues     []json.RawMessage    `json:"queues"`
	Tasks      []diskTask           `json:"tasks"`
	Tombstones map[string]time.Time `json:"tombstones"`
}

type diskTask struct {
	Task             json.RawMessage `json:"task"`
	Executions       int32           `json:"executions,omitempty"`
	PreviousResponse int             `json:"previous_response,omitempty"`
	RetryReason      string          `json:"retry_reason,omitempty"`
}

// load reads the state written by an earlier server on the same Dir.
func (s *Server) load() error {
	if s.dir == "" {
		return nil
	}
	var st diskState
	path := filepath.Join(s.dir, stateFile)
	found, err := durable.ReadJSON(path, &st)
	if err != nil || !found {
		return err
	}
	for _, raw := range st.Queues {
		q := new(cloudtaskspb.Queue)
		if err := protojson.Unmarshal(raw, q); err != nil {
			return fmt.Errorf("failed to decode queue in %s: %w", path, err)
		}
		s.queues[q.GetName()] = q
	}
	for _, dt := range st.Tasks {
		pb := new(cloudtaskspb.Task)
		if err := protojson.Unmarshal(dt.Task, pb); err != nil {
			return fmt.Errorf("failed to decode task in %s: %w", path, err)
		}
		queue, _, err := splitTaskName(pb.GetName())
		if err != nil {
			return fmt.Errorf("bad task name %q in %s: %w", pb.GetName(), path, err)
		}
		s.tasks[pb.GetName()] = &task{
			pb:         pb,
			queue:      queue,
			executions: dt.Executions,
			prevStatus: dt.PreviousResponse,
			prevReason: dt.RetryReason,
		}
	}
	for name, until := range st.Tombstones {
		s.tombstones[name] = until
	}
	return nil
}

// persistLocked writes the whole state; s.mu must be held, so the file
// always matches an order of mutations the API could observe. It also drops
// tombstones whose window has passed.
func (s *Server) persistLocked() error {
	now := s.clock.Now()
	for name, until := range s.tombstones {
		if !now.Before(until) {
			delete(s.tombstones, name)
		}
	}
	if s.dir == "" {
		return nil
	}
	st := diskState{Tombstones: s.tombstones}
	for _, name := range sortedKeys(s.queues) {
		raw, err := protojson.Marshal(s.queues[name])
		if err != nil {
			return fmt.Errorf("failed to encode queue %s: %w", name, err)
		}
		st.Queues = append(st.Queues, raw)
	}
	for _, name := range sortedKeys(s.tasks) {
		t := s.tasks[name]
		raw, err := protojson.Marshal(t.pb)
		if err != nil {
			return fmt.Errorf("failed to encode task %s: %w", name, err)
		}
		st.Tasks = append(st.Tasks, diskTask{Task: raw, Executions: t.executions, PreviousResponse: t.prevStatus, RetryReason: t.prevReason})
	}
	if err := durable.WriteJSON(filepath.Join(s.dir, stateFile), st); err != nil {
		return fmt.Errorf("failed to persist cloud tasks state: %w", err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
