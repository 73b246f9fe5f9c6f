package wfrunner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
)

// journalFile holds every execution as entries of one durable.Journal: a
// step appends its own journal entry and nothing else, so its cost is the
// same on the first step and on the thousandth.
const journalFile = "executions.journal"

// Keys of an execution's entries: its resource name, a separator that no
// resource name contains, and the part.
const (
	keySep      = "|"
	partStart   = "start" // what never changes: startRec
	partEnd     = "end"   // the outcome, once finished: endRec
	partCB      = "cb/"   // + callback id: callbackRec
	partJournal = "j/"    // + zero-padded index: entry
	// sourceName heads the entry of one revision's source, kept once for
	// all its executions (a copy per execution was most of the journal's
	// memory with a thousand running): sourceName|WORKFLOW/REVISION.
	sourceName = "revision-source"
)

func sourceKey(workflow, revision string) string {
	return sourceName + keySep + workflow + "/" + revision
}

// startRec is the part of a record fixed when the execution is created.
type startRec struct {
	Name       string `json:"name"`
	Workflow   string `json:"workflow"`
	RevisionID string `json:"revisionId"`
	// Source is only in entries written before sources were kept once per
	// revision (sourceKey); new ones leave it out.
	Source    string    `json:"source,omitempty"`
	Argument  string    `json:"argument"`
	StartTime time.Time `json:"startTime"`
	// Env is record.Env: what sys.get_env answers, fixed at the start.
	Env map[string]string `json:"env,omitempty"`
}

// endRec is the part of a record written when the execution ends.
type endRec struct {
	State   string    `json:"state"`
	Result  string    `json:"result,omitempty"`
	Error   *errorRec `json:"error,omitempty"`
	EndTime time.Time `json:"endTime"`
}

// saveSet names the parts of a record a change touched.
type saveSet struct {
	start, end bool
	entries    []int    // indexes into record.Journal
	callbacks  []string // ids in record.Callbacks
}

func entryKey(name string, i int) string {
	return name + keySep + partJournal + fmt.Sprintf("%08d", i)
}

// saveLocked writes the parts of ex's record that s names, as they are in
// memory now, in one journal record, and syncs it; ex.mu is held or ex is
// not shared.
func (ex *execution) saveLocked(s saveSet) error {
	return ex.persistLocked(s, false)
}

// deferLocked is saveLocked without waiting for the sync
// (durable.Journal.Defer): for entries whose loss in a crash only makes
// the replay redo what no one outside has seen. Every effect that can be
// seen outside syncs first (effect), as does every durable save, since
// the journal keeps records in order.
func (ex *execution) deferLocked(s saveSet) error {
	return ex.persistLocked(s, true)
}

func (ex *execution) persistLocked(s saveSet, deferred bool) error {
	rec := ex.rec
	var b durable.Batch
	put := func(key string, v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("failed to encode %s: %w", key, err)
		}
		b.Put(key, raw)
		return nil
	}
	var errs []error
	if s.start {
		if k := sourceKey(rec.Workflow, rec.RevisionID); !ex.r.journal.Has(k) {
			b.Put(k, []byte(rec.Source))
		}
		errs = append(errs, put(rec.Name+keySep+partStart, startRec{
			Name: rec.Name, Workflow: rec.Workflow, RevisionID: rec.RevisionID,
			Argument: rec.Argument, StartTime: rec.StartTime, Env: rec.Env,
		}))
	}
	if s.end {
		errs = append(errs, put(rec.Name+keySep+partEnd, endRec{State: rec.State, Result: rec.Result, Error: rec.Error, EndTime: rec.EndTime}))
	}
	for _, i := range s.entries {
		errs = append(errs, put(entryKey(rec.Name, i), rec.Journal[i]))
	}
	for _, id := range s.callbacks {
		errs = append(errs, put(rec.Name+keySep+partCB+id, rec.Callbacks[id]))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to persist execution %s: %w", rec.Name, err)
	}
	apply := ex.r.journal.Apply
	if deferred {
		apply = ex.r.journal.Defer
	}
	if err := apply(&b); err != nil {
		return fmt.Errorf("failed to persist execution %s: %w", rec.Name, err)
	}
	return nil
}

// readRecords rebuilds the records from a journal's entries.
func readRecords(j interface {
	Range(string, func(string, []byte) error) error
},
) (map[string]*record, error) {
	recs := map[string]*record{}
	get := func(name string) *record {
		r := recs[name]
		if r == nil {
			r = &record{Name: name, State: stateActive, Callbacks: map[string]*callbackRec{}}
			recs[name] = r
		}
		return r
	}
	journals := map[string]map[int]entry{}
	sources := map[string]string{} // WORKFLOW/REVISION -> source
	err := j.Range("", func(key string, value []byte) error {
		name, part, ok := strings.Cut(key, keySep)
		if !ok {
			return fmt.Errorf("unknown entry %q", key)
		}
		if name == sourceName {
			sources[part] = string(value)
			return nil
		}
		rec := get(name)
		switch {
		case part == partStart:
			var s startRec
			if err := json.Unmarshal(value, &s); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			rec.Workflow, rec.RevisionID, rec.Source, rec.Argument, rec.StartTime, rec.Env = s.Workflow, s.RevisionID, s.Source, s.Argument, s.StartTime, s.Env
		case part == partEnd:
			var e endRec
			if err := json.Unmarshal(value, &e); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			rec.State, rec.Result, rec.Error, rec.EndTime = e.State, e.Result, e.Error, e.EndTime
		case strings.HasPrefix(part, partCB):
			var c callbackRec
			if err := json.Unmarshal(value, &c); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			rec.Callbacks[strings.TrimPrefix(part, partCB)] = &c
		case strings.HasPrefix(part, partJournal):
			i, err := strconv.Atoi(strings.TrimPrefix(part, partJournal))
			if err != nil {
				return fmt.Errorf("bad journal index in %q: %w", key, err)
			}
			var e entry
			if err := json.Unmarshal(value, &e); err != nil {
				return fmt.Errorf("failed to decode %s: %w", key, err)
			}
			if journals[name] == nil {
				journals[name] = map[int]entry{}
			}
			journals[name][i] = e
		default:
			return fmt.Errorf("unknown entry %q", key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read executions: %w", err)
	}
	for name, rec := range recs {
		if rec.Workflow == "" {
			return nil, fmt.Errorf("failed to read execution %s: it has no start entry", name)
		}
		if rec.Source == "" {
			src, ok := sources[rec.Workflow+"/"+rec.RevisionID]
			if !ok {
				return nil, fmt.Errorf("failed to read execution %s: the source of revision %s is missing", name, rec.RevisionID)
			}
			rec.Source = src
		}
		es := journals[name]
		rec.Journal = make([]entry, len(es))
		for i, e := range es {
			if i < 0 || i >= len(es) {
				return nil, fmt.Errorf("failed to read execution %s: its journal has a gap before entry %d", name, i)
			}
			rec.Journal[i] = e
		}
	}
	return recs, nil
}

// migrateLegacy moves the per-execution files of earlier versions
// (Dir/executions/WORKFLOW/ID.json, rewritten whole on every step) into the
// journal, one batch per file, removing each file after its batch. A crash
// in between copies the same record again on the next start.
func (r *Runner) migrateLegacy() error {
	root := filepath.Join(r.cfg.Dir, "executions")
	wfDirs, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to list legacy executions: %w", err)
	}
	for _, wd := range wfDirs {
		files, err := os.ReadDir(filepath.Join(root, wd.Name()))
		if err != nil {
			return fmt.Errorf("failed to list legacy executions: %w", err)
		}
		for _, f := range files {
			p := filepath.Join(root, wd.Name(), f.Name())
			if strings.HasPrefix(f.Name(), ".") {
				_ = os.Remove(p) // a temporary file of durable.WriteFile, left by a kill
				continue
			}
			if !strings.HasSuffix(f.Name(), ".json") {
				continue
			}
			var rec record
			if _, err := durable.ReadJSON(p, &rec); err != nil {
				return fmt.Errorf("failed to read legacy execution: %w", err)
			}
			if rec.Callbacks == nil {
				rec.Callbacks = map[string]*callbackRec{}
			}
			s := saveSet{start: true, end: rec.State != stateActive}
			for i := range rec.Journal {
				s.entries = append(s.entries, i)
			}
			for id := range rec.Callbacks {
				s.callbacks = append(s.callbacks, id)
			}
			ex := &execution{r: r, rec: &rec}
			if err := ex.saveLocked(s); err != nil {
				return fmt.Errorf("failed to move %s into the journal: %w", p, err)
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("failed to remove %s after moving it into the journal: %w", p, err)
			}
		}
	}
	return nil
}
