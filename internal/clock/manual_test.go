package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
)

func TestManualAdvanceFiresDueTimersInOrder(t *testing.T) {
	t.Parallel()
	m := clock.NewManual(virtualStart)
	timers := map[string]clock.Timer{
		"30s": m.NewTimer(30 * time.Second),
		"10s": m.NewTimer(10 * time.Second),
		"1m":  m.NewTimer(time.Minute),
		"2m":  m.NewTimer(2 * time.Minute),
	}
	if !timers["2m"].Stop() {
		t.Error("Stop() of an armed timer = false")
	}
	if got := m.Timers(); got != 3 {
		t.Errorf("Timers() = %d, want 3", got)
	}

	m.Advance(10*time.Second - time.Nanosecond)
	for name, tm := range timers {
		if fired(tm) {
			t.Errorf("timer %s fired before its deadline", name)
		}
	}
	m.Advance(50 * time.Second) // now start+60s-1ns
	got := map[string]time.Time{}
	for name, tm := range timers {
		select {
		case at := <-tm.C():
			got[name] = at
		default:
		}
	}
	now := virtualStart.Add(time.Minute - time.Nanosecond)
	want := map[string]time.Time{"10s": now, "30s": now}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fired timers (-want +got):\n%s", diff)
	}
	if got := m.Now(); !got.Equal(now) {
		t.Errorf("Now() = %v, want %v", got, now)
	}
	m.Advance(time.Nanosecond)
	if !fired(timers["1m"]) {
		t.Error("timer 1m did not fire at its deadline")
	}
	m.Advance(time.Hour)
	if fired(timers["2m"]) {
		t.Error("a stopped timer fired")
	}
	if got := m.Timers(); got != 0 {
		t.Errorf("Timers() after all fired = %d, want 0", got)
	}
	if timers["10s"].Stop() {
		t.Error("Stop() after firing = true, want false")
	}
}

func TestManualZeroTimerFiresAtOnce(t *testing.T) {
	t.Parallel()
	m := clock.NewManual(virtualStart)
	if !fired(m.NewTimer(0)) {
		t.Error("NewTimer(0) did not fire at once")
	}
	if got := m.Timers(); got != 0 {
		t.Errorf("Timers() = %d, want 0", got)
	}
}

func TestManualSleepAndWaitForTimers(t *testing.T) {
	t.Parallel()
	m := clock.NewManual(virtualStart)
	done := make(chan error, 1)
	go func() { done <- m.Sleep(t.Context(), time.Minute) }()
	if err := m.WaitForTimers(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	m.Advance(59 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("Sleep(1m) returned after 59s: %v", err)
	default:
	}
	m.Advance(time.Second)
	if err := <-done; err != nil {
		t.Errorf("Sleep: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.WaitForTimers(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitForTimers with no timer and a cancelled context = %v, want context.Canceled", err)
	}
}

func TestManualAdvanceRejectsNegative(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("Advance(-1s) did not panic")
		}
	}()
	clock.NewManual(virtualStart).Advance(-time.Second)
}
