package localtasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
)

// journalFile holds the state as a durable.Journal with one entry per
// queue, per task and per reserved name, so a mutation writes the entries
// it changed and nothing else: the cost of CreateTask is the same with ten
// tasks scheduled or with thousands.
const journalFile = "cloudtasks.journal"

// legacyStateFile is the single file earlier versions rewrote whole on
// every mutation; New moves its content into the journal once.
const legacyStateFile = "cloudtasks.json"

// Journal keys: a prefix and the resource name.
const (
	queueKey = "queue/"
	taskKey  = "task/"
	tombKey  = "tombstone/"
)

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

// tombstone is a reserved name in the order tombstones expire.
type tombstone struct {
	name  string
	until time.Time
}

// load opens the journal under Dir, moving a legacy state file into it
// first, and rebuilds the queues, tasks and tombstones.
func (s *Server) load() error {
	if s.dir == "" {
		return nil
	}
	j, err := durable.OpenJournal(filepath.Join(s.dir, journalFile))
	if err != nil {
		return fmt.Errorf("failed to open cloud tasks state: %w", err)
	}
	if err := migrateLegacy(s.dir, j); err != nil {
		j.Close()
		return err
	}
	err = j.Range("", func(key string, value []byte) error {
		switch {
		case strings.HasPrefix(key, queueKey):
			q := new(cloudtaskspb.Queue)
			if err := protojson.Unmarshal(value, q); err != nil {
				return fmt.Errorf("failed to decode queue %s: %w", key, err)
			}
			s.queues[q.GetName()] = q
		case strings.HasPrefix(key, taskKey):
			t, err := decodeTask(value)
			if err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			s.tasks[t.pb.GetName()] = t
		case strings.HasPrefix(key, tombKey):
			var until time.Time
			if err := until.UnmarshalText(value); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			s.tombstones[strings.TrimPrefix(key, tombKey)] = until
		default:
			return fmt.Errorf("unknown entry %q", key)
		}
		return nil
	})
	if err != nil {
		j.Close()
		return fmt.Errorf("failed to load cloud tasks state: %w", err)
	}
	for name, until := range s.tombstones {
		s.expiry = append(s.expiry, tombstone{name: name, until: until})
	}
	sort.Slice(s.expiry, func(a, b int) bool { return s.expiry[a].until.Before(s.expiry[b].until) })
	s.journal = j
	return nil
}

// migrateLegacy copies the content of a legacy cloudtasks.json into j in
// one batch, then removes the file. A crash before the removal copies the
// same content again on the next start, which changes nothing.
func migrateLegacy(dir string, j *durable.Journal) error {
	path := filepath.Join(dir, legacyStateFile)
	var st diskState
	found, err := durable.ReadJSON(path, &st)
	if err != nil || !found {
		return err
	}
	var b durable.Batch
	for _, raw := range st.Queues {
		q := new(cloudtaskspb.Queue)
		if err := protojson.Unmarshal(raw, q); err != nil {
			return fmt.Errorf("failed to decode queue in %s: %w", path, err)
		}
		b.Put(queueKey+q.GetName(), raw)
	}
	for _, dt := range st.Tasks {
		pb := new(cloudtaskspb.Task)
		if err := protojson.Unmarshal(dt.Task, pb); err != nil {
			return fmt.Errorf("failed to decode task in %s: %w", path, err)
		}
		raw, err := json.Marshal(dt)
		if err != nil {
			return fmt.Errorf("failed to encode task %s: %w", pb.GetName(), err)
		}
		b.Put(taskKey+pb.GetName(), raw)
	}
	for name, until := range st.Tombstones {
		raw, err := until.MarshalText()
		if err != nil {
			return fmt.Errorf("failed to encode tombstone %s: %w", name, err)
		}
		b.Put(tombKey+name, raw)
	}
	if err := j.Apply(&b); err != nil {
		return fmt.Errorf("failed to move %s into the journal: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to remove %s after moving it into the journal: %w", path, err)
	}
	return nil
}

func decodeTask(raw []byte) (*task, error) {
	var dt diskTask
	if err := json.Unmarshal(raw, &dt); err != nil {
		return nil, fmt.Errorf("failed to decode the entry: %w", err)
	}
	pb := new(cloudtaskspb.Task)
	if err := protojson.Unmarshal(dt.Task, pb); err != nil {
		return nil, fmt.Errorf("failed to decode the task: %w", err)
	}
	queue, _, err := splitTaskName(pb.GetName())
	if err != nil {
		return nil, fmt.Errorf("bad task name %q: %w", pb.GetName(), err)
	}
	return &task{pb: pb, queue: queue, executions: dt.Executions, prevStatus: dt.PreviousResponse, prevReason: dt.RetryReason}, nil
}

func encodeTask(t *task) ([]byte, error) {
	raw, err := protojson.Marshal(t.pb)
	if err != nil {
		return nil, fmt.Errorf("failed to encode task %s: %w", t.pb.GetName(), err)
	}
	out, err := json.Marshal(diskTask{Task: raw, Executions: t.executions, PreviousResponse: t.prevStatus, RetryReason: t.prevReason})
	if err != nil {
		return nil, fmt.Errorf("failed to encode task %s: %w", t.pb.GetName(), err)
	}
	return out, nil
}

// change names what a mutation touched, for saveLocked.
type change struct {
	queues []string // queue names
	tasks  []string // task names: saved if live, else deleted with their tombstone
}

// saveLocked writes what c names, as it is in memory now, in one journal
// record together with the removal of the tombstones that have expired;
// s.mu must be held, so the journal follows an order of mutations the API
// could observe. The work is proportional to the change, not to the state.
func (s *Server) saveLocked(c change) error {
	var b durable.Batch
	s.pruneLocked(&b)
	if s.journal == nil {
		return nil
	}
	for _, name := range c.queues {
		raw, err := protojson.Marshal(s.queues[name])
		if err != nil {
			return fmt.Errorf("failed to encode queue %s: %w", name, err)
		}
		b.Put(queueKey+name, raw)
	}
	for _, name := range c.tasks {
		if t, ok := s.tasks[name]; ok {
			raw, err := encodeTask(t)
			if err != nil {
				return err
			}
			b.Put(taskKey+name, raw)
			continue
		}
		b.Delete(taskKey + name)
		if until, ok := s.tombstones[name]; ok {
			raw, err := until.MarshalText()
			if err != nil {
				return fmt.Errorf("failed to encode tombstone %s: %w", name, err)
			}
			b.Put(tombKey+name, raw)
		}
	}
	if err := s.journal.Apply(&b); err != nil {
		return fmt.Errorf("failed to persist cloud tasks state: %w", err)
	}
	return nil
}

// pruneLocked forgets the tombstones whose window has passed, oldest
// first, and adds their removal to b. Tombstones are queued in the order
// they were made, which is the order they expire, so the work is the
// number pruned, not the number kept.
func (s *Server) pruneLocked(b *durable.Batch) {
	now := s.clock.Now()
	for len(s.expiry) > 0 && !now.Before(s.expiry[0].until) {
		ts := s.expiry[0]
		s.expiry = s.expiry[1:]
		// A name reserved again since has a later entry of its own.
		if until, ok := s.tombstones[ts.name]; ok && until.Equal(ts.until) {
			delete(s.tombstones, ts.name)
			b.Delete(tombKey + ts.name)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
