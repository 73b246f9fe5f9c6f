package clock

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Manual is a clock that moves only when told to, for tests that must not
// depend on real time at all: Advance moves Now and fires the timers it
// passes. Code under test computes a deadline and arms its timer in separate
// steps, so a test that advances past a deadline first waits with
// WaitForTimers until the timer it means to fire is armed.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*manualTimer // pending, unordered
	changed chan struct{}  // closed and replaced when timers are added
}

// NewManual returns a Manual clock stopped at start.
func NewManual(start time.Time) *Manual {
	return &Manual{now: start, changed: make(chan struct{})}
}

// Now is the time the clock was last set to.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// NewTimer returns a timer that fires when Advance reaches Now()+d.
func (m *Manual) NewTimer(d time.Duration) Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{m: m, at: m.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- m.now
		return t
	}
	m.timers = append(m.timers, t)
	close(m.changed)
	m.changed = make(chan struct{})
	return t
}

// Sleep waits until Advance has moved the clock d forward, or ctx ends.
func (m *Manual) Sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, m, d) }

// Advance moves the clock d forward and fires, earliest first, every timer
// whose deadline it reaches. It panics if d is negative: time does not run
// backwards for the code under test.
func (m *Manual) Advance(d time.Duration) {
	if d < 0 {
		panic(fmt.Sprintf("clock: Advance(%s): negative duration", d))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
	var due []*manualTimer
	m.timers = slices.DeleteFunc(m.timers, func(t *manualTimer) bool {
		if t.at.After(m.now) {
			return false
		}
		due = append(due, t)
		return true
	})
	slices.SortStableFunc(due, func(a, b *manualTimer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.ch <- m.now
	}
}

// Timers is the number of armed timers (not yet fired or stopped).
func (m *Manual) Timers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.timers)
}

// WaitForTimers blocks until at least n timers are armed, or ctx ends.
func (m *Manual) WaitForTimers(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		armed, changed := len(m.timers), m.changed
		m.mu.Unlock()
		if armed >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("failed to see %d armed timers (%d armed): %w", n, armed, ctx.Err())
		}
	}
}

type manualTimer struct {
	m  *Manual
	at time.Time
	ch chan time.Time // buffered: one value, sent once
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) Stop() bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	i := slices.Index(t.m.timers, t)
	if i < 0 {
		return false
	}
	t.m.timers = slices.Delete(t.m.timers, i, i+1)
	return true
}
