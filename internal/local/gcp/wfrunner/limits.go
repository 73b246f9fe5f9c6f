package wfrunner

import (
	"errors"
	"fmt"
	"time"

	"github.com/jitpipeline/jit/internal/local/gcp/wfexpr"
)

// Limits Workflows documents for one execution, enforced as Google does so
// that a workflow which would fail there fails here
// (https://cloud.google.com/workflows/quotas; docs/google-cloud.md §4).
const (
	// MaxMemoryBytes bounds all variables of an execution together: 512 KB.
	// Exceeding it raises ResourceLimitError.
	MaxMemoryBytes = 512 * 1024
	// MaxExecutionDuration is the longest an execution may run: one year.
	MaxExecutionDuration = 365 * 24 * time.Hour
)

// errDurationExceeded ends an execution that reached MaxExecutionDuration.
// It is not an exception: try/except cannot catch it, retries do not run.
var errDurationExceeded = errors.New("execution exceeded the maximum duration of one year")

// limit is the instant the execution must have finished by.
func (ex *execution) limit() time.Time { return ex.rec.StartTime.Add(MaxExecutionDuration) }

// overdue reports errDurationExceeded once the execution's year is over.
func (ex *execution) overdue() error {
	if ex.r.cfg.Clock.Now().Before(ex.limit()) {
		return nil
	}
	return errDurationExceeded
}

// checkMemory raises ResourceLimitError when the variables of every live
// scope of every routine on the call stack together exceed MaxMemoryBytes.
// Sizes approximate the JSON encoding (names included), which is what a
// workflow author can reason about.
func (ex *execution) checkMemory() error {
	total := 0
	for _, fr := range ex.frames {
		for _, sc := range fr.scopes {
			for k, v := range sc {
				total += len(k) + sizeOf(v)
			}
		}
	}
	if total > MaxMemoryBytes {
		return newError("ResourceLimitError", fmt.Sprintf("variables use %d bytes, over the %d-byte memory limit", total, MaxMemoryBytes))
	}
	return nil
}

// assignChecked assigns v to p and then checks the memory limit. An
// assignment to a plain name that breaks the limit is undone, so a workflow
// that catches the ResourceLimitError goes on with the variables it had.
func (ex *execution) assignChecked(fr *frame, p *path, v any) error {
	var (
		scope    map[string]any
		old      any
		existed  bool
		assigned = len(p.segs) == 0
	)
	if assigned {
		scope = fr.scopes[len(fr.scopes)-1]
		for i := len(fr.scopes) - 1; i >= 0; i-- {
			if prev, ok := fr.scopes[i][p.root]; ok {
				scope, old, existed = fr.scopes[i], prev, true
				break
			}
		}
	}
	if err := ex.setPath(fr, p, v); err != nil {
		return err
	}
	err := ex.checkMemory()
	if err != nil && assigned {
		if existed {
			scope[p.root] = old
		} else {
			delete(scope, p.root)
		}
	}
	return err
}

// sizeOf approximates the JSON size of a Workflows value.
func sizeOf(v any) int {
	switch x := v.(type) {
	case nil:
		return 4
	case bool:
		return 5
	case int64, float64:
		return 8
	case string:
		return len(x) + 2
	case []byte:
		return len(x)
	case []any:
		n := 2
		for _, e := range x {
			n += sizeOf(e) + 1
		}
		return n
	case map[string]any:
		n := 2
		for k, e := range x {
			n += len(k) + 4 + sizeOf(e)
		}
		return n
	}
	return len(wfexpr.TypeName(v))
}
