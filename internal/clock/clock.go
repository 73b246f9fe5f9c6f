// Package clock is the one source of time shared by every time-dependent part
// of the embedded Google Cloud and the pipeline: Cloud Tasks dispatch, the
// workflow runner's sleeps, await timeouts and retries, IAM condition
// evaluation and the pipeline's own timestamps.
//
// Sharing one Clock is what lets an end-to-end test run a whole grant
// lifecycle (a PT1M grant, an approval window of minutes) faster than real
// time without the parts disagreeing about what time it is: a Scaled clock
// moves every part's "now" forward together, and every wait on it ends when
// that shared "now" reaches the deadline.
package clock

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Clock tells the time and waits. Implementations are safe for concurrent
// use.
type Clock interface {
	// Now is the current time on this clock.
	Now() time.Time
	// NewTimer returns a timer that fires once, when d of this clock's time
	// has passed; d <= 0 fires at once. The value sent is Now() at firing.
	NewTimer(d time.Duration) Timer
	// Sleep waits d of this clock's time, or until ctx ends, in which case
	// it returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C delivers one value, the clock's time when the timer fired.
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports false if the timer had
	// already fired or been stopped; a value already sent stays in C, so
	// callers that stop a timer do not read C afterwards.
	Stop() bool
}

// sleep waits d on c; it is every Clock's Sleep.
func sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Real returns the system clock: the time package, unchanged.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                                     { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer                     { return realTimer{time.NewTimer(d)} }
func (c realClock) Sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, c, d) }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Scaled returns a clock that starts at start now and runs factor times
// faster than real time (factor < 1 runs slower): its Now is start + (real
// time elapsed since the call) × factor, and a timer of d fires after d/factor
// of real time. It panics unless factor is positive and finite.
func Scaled(start time.Time, factor float64) Clock {
	return ScaledSince(start, time.Now(), factor)
}

// ScaledSince is Scaled anchored at realStart instead of the time of the
// call: Now is start + (time.Now() − realStart) × factor. Processes given the
// same start and realStart share one virtual timeline, so an embedded cloud
// restarted after kill -9 finds the deadlines it journaled in virtual time
// where it left them. It panics unless factor is positive and finite.
func ScaledSince(start, realStart time.Time, factor float64) Clock {
	if !(factor > 0) || math.IsInf(factor, 0) {
		panic(fmt.Sprintf("clock: scale factor must be positive and finite, got %v", factor))
	}
	// Virtual times carry no monotonic reading: comparing one with a real
	// time.Now() must use the wall clock, not the process's monotonic clock.
	return &scaled{start: start.Round(0), realStart: realStart, factor: factor}
}

type scaled struct {
	start     time.Time // virtual time at realStart
	realStart time.Time
	factor    float64
}

func (c *scaled) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.realStart)) * c.factor))
}

// realDuration is how long a virtual duration d takes in real time, rounded
// up so that a timer never fires before the virtual deadline.
func (c *scaled) realDuration(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(float64(d) / c.factor))
}

func (c *scaled) NewTimer(d time.Duration) Timer {
	t := &scaledTimer{c: c, ch: make(chan time.Time, 1), at: c.Now().Add(d)}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.t = time.AfterFunc(c.realDuration(d), t.fire)
	return t
}

func (c *scaled) Sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, c, d) }

// scaledTimer is a real timer for the real-time equivalent of a virtual
// duration, which re-arms itself if floating-point rounding lets it wake a
// hair before its virtual deadline.
type scaledTimer struct {
	c  *scaled
	ch chan time.Time // buffered: one value, sent once
	at time.Time      // virtual deadline

	mu   sync.Mutex
	t    *time.Timer
	done bool // fired or stopped
}

func (t *scaledTimer) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	now := t.c.Now()
	if now.Before(t.at) {
		t.t = time.AfterFunc(t.c.realDuration(t.at.Sub(now)), t.fire)
		return
	}
	t.done = true
	t.ch <- now
}

func (t *scaledTimer) C() <-chan time.Time { return t.ch }

func (t *scaledTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	t.t.Stop()
	return true
}
