package clock_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
)

// The tests run in synctest bubbles, whose fake time package makes real
// elapsed time exact: "fires after d/factor of real time" is checked to the
// nanosecond without any wall-clock luck or waiting.

var virtualStart = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// fired reports whether t has fired, without waiting.
func fired(t clock.Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestRealIsTheTimePackage(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := clock.Real()
		start := time.Now()
		if got := c.Now(); !got.Equal(start) {
			t.Errorf("Real().Now() = %v, want time.Now() %v", got, start)
		}
		timer := c.NewTimer(3 * time.Second)
		at := <-timer.C()
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("timer of 3s fired after %v", got)
		}
		if !at.Equal(time.Now()) {
			t.Errorf("timer sent %v, want the firing time %v", at, time.Now())
		}
		if err := c.Sleep(t.Context(), 2*time.Second); err != nil {
			t.Errorf("Sleep: %v", err)
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("after Sleep(2s) real elapsed %v, want 5s", got)
		}
	})
}

func TestScaledNowAndTimers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		factor   float64
		d        time.Duration // virtual
		wantReal time.Duration
	}{
		{"one", 1, 90 * time.Second, 90 * time.Second},
		{"minute_per_second", 60, time.Minute, time.Second},
		{"hour_per_second", 3600, time.Hour, time.Second},
		{"slower", 0.5, time.Second, 2 * time.Second},
		// 1s/3 is not a whole number of nanoseconds: rounded up, never early.
		{"inexact", 3, time.Second, 333333334 * time.Nanosecond},
		{"zero", 60, 0, 0},
		{"negative", 60, -time.Minute, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				realStart := time.Now()
				c := clock.Scaled(virtualStart, tc.factor)
				if got := c.Now(); !got.Equal(virtualStart) {
					t.Errorf("Now() at creation = %v, want start %v", got, virtualStart)
				}
				timer := c.NewTimer(tc.d)
				at := <-timer.C()
				if got := time.Since(realStart); got != tc.wantReal {
					t.Errorf("timer of %v (virtual) fired after %v real, want %v", tc.d, got, tc.wantReal)
				}
				// The value sent is the virtual time at firing, never before
				// the deadline.
				if now := c.Now(); !at.Equal(now) {
					t.Errorf("timer sent %v, want Now() %v", at, now)
				}
				if deadline := virtualStart.Add(max(tc.d, 0)); at.Before(deadline) {
					t.Errorf("timer fired at virtual %v, before its deadline %v", at, deadline)
				}
				if timer.Stop() {
					t.Error("Stop() after firing = true, want false")
				}
			})
		})
	}
}

func TestScaledNowRunsFactorTimesFaster(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := clock.Scaled(virtualStart, 60)
		var got []time.Duration
		for range 3 {
			time.Sleep(1500 * time.Millisecond)
			got = append(got, c.Now().Sub(virtualStart))
		}
		want := []time.Duration{90 * time.Second, 180 * time.Second, 270 * time.Second}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("virtual elapsed after 1.5s steps of real time (-want +got):\n%s", diff)
		}
		// Virtual times carry no monotonic reading of this process, so they
		// compare with real times (and times read back from disk) by wall clock.
		if s := c.Now().String(); strings.Contains(s, "m=") {
			t.Errorf("virtual time %q carries a monotonic reading", s)
		}
	})
}

func TestScaledSinceSharesOneTimeline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// A parent hands start and realStart to a child process; the wall
		// clock reading is all that survives serialisation.
		realStart := time.Now().Round(0)
		first := clock.ScaledSince(virtualStart, realStart, 60)
		time.Sleep(10 * time.Second)
		// A "restarted" process builds its clock 10 real seconds later.
		second := clock.ScaledSince(virtualStart, realStart, 60)
		want := virtualStart.Add(10 * time.Minute)
		for name, c := range map[string]clock.Clock{"first": first, "second": second} {
			if got := c.Now(); !got.Equal(want) {
				t.Errorf("%s.Now() = %v, want %v", name, got, want)
			}
		}
		// A plain Scaled clock built at the same moment starts over instead.
		if got := clock.Scaled(virtualStart, 60).Now(); !got.Equal(virtualStart) {
			t.Errorf("Scaled(...).Now() = %v, want %v", got, virtualStart)
		}
	})
}

func TestScaledStop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := clock.Scaled(virtualStart, 60)
		stopped := c.NewTimer(time.Minute)
		kept := c.NewTimer(2 * time.Minute)
		time.Sleep(500 * time.Millisecond)
		if !stopped.Stop() {
			t.Error("Stop() before firing = false, want true")
		}
		if stopped.Stop() {
			t.Error("second Stop() = true, want false")
		}
		time.Sleep(2 * time.Second) // past both deadlines (virtual 2m30s)
		synctest.Wait()
		if fired(stopped) {
			t.Error("a stopped timer fired")
		}
		if !fired(kept) {
			t.Error("the timer that was not stopped did not fire")
		}
	})
}

func TestSleep(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		newClock func() clock.Clock
		wantReal time.Duration // of Sleep(1m)
	}{
		{"real", clock.Real, time.Minute},
		{"scaled", func() clock.Clock { return clock.Scaled(virtualStart, 60) }, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				c := tc.newClock()
				v0, r0 := c.Now(), time.Now()
				if err := c.Sleep(t.Context(), time.Minute); err != nil {
					t.Fatalf("Sleep: %v", err)
				}
				if got := c.Now().Sub(v0); got != time.Minute {
					t.Errorf("Sleep(1m) advanced the clock by %v", got)
				}
				if got := time.Since(r0); got != tc.wantReal {
					t.Errorf("Sleep(1m) took %v of real time, want %v", got, tc.wantReal)
				}

				// Cancelling the context ends the sleep at once, with its error.
				ctx, cancel := context.WithCancel(t.Context())
				r1 := time.Now()
				time.AfterFunc(time.Millisecond, cancel)
				if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
					t.Errorf("Sleep with a cancelled context = %v, want context.Canceled", err)
				}
				if got := time.Since(r1); got != time.Millisecond {
					t.Errorf("cancelled Sleep returned after %v, want 1ms", got)
				}
				if err := c.Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
					t.Errorf("Sleep(0) with a cancelled context = %v, want context.Canceled", err)
				}
			})
		})
	}
}

func TestScaledRejectsBadFactors(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Scaled(start, %v) did not panic", f)
				}
			}()
			clock.Scaled(virtualStart, f)
		}()
	}
}

// TestScaledConcurrent is for the race detector: many goroutines read the
// clock and start, stop and wait on timers at once, and each sees time
// move forward only.
func TestScaledConcurrent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := clock.Scaled(virtualStart, 1000)
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				last := c.Now()
				for j := range 20 {
					timer := c.NewTimer(time.Duration(i+j) * time.Second)
					if j%3 == 0 {
						timer.Stop()
					} else {
						<-timer.C()
					}
					now := c.Now()
					if now.Before(last) {
						t.Errorf("time went backwards: %v after %v", now, last)
					}
					last = now
				}
			})
		}
		wg.Wait()
	})
}
