package groups

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// countingResolver answers from a table, counting calls; block, if set, is
// waited on (or the caller's context) before answering.
type countingResolver struct {
	calls   atomic.Int64
	block   chan struct{}
	fail    atomic.Int64 // the next n calls fail
	answers map[string][]string
}

var errBackend = errors.New("backend unavailable")

func (r *countingResolver) answer(ctx context.Context, key string) ([]string, error) {
	r.calls.Add(1)
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r.fail.Add(-1) >= 0 {
		return nil, errBackend
	}
	return append([]string(nil), r.answers[key]...), nil
}

func (r *countingResolver) GroupsOf(ctx context.Context, email string) ([]string, error) {
	return r.answer(ctx, "groups:"+email)
}

func (r *countingResolver) MembersOf(ctx context.Context, group string) ([]string, error) {
	return r.answer(ctx, "members:"+group)
}

func newCounting() *countingResolver {
	return &countingResolver{answers: map[string][]string{
		"groups:alice@example.com": {"sre@example.com"},
		"members:sre@example.com":  {"alice@example.com", "bob@example.com"},
	}}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	// docs/jit-access.md §3.3: JIT Groups caches subject principals for 30 s,
	// the default here; the answer is reused until then and reloaded after.
	inner := newCounting()
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := NewCache(inner, 0, clk.now)
	ctx := t.Context()

	steps := []struct {
		advance   time.Duration
		email     string
		wantCalls int64
	}{
		{0, "alice@example.com", 1},
		{10 * time.Second, "ALICE@example.com", 1}, // same key, case-insensitive
		{19 * time.Second, "alice@example.com", 1}, // 29 s: still fresh
		{1 * time.Second, "alice@example.com", 2},  // 30 s: expired
		{29 * time.Second, "alice@example.com", 2},
	}
	for i, s := range steps {
		clk.advance(s.advance)
		got, err := c.GroupsOf(ctx, s.email)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"sre@example.com"}, got); diff != "" {
			t.Errorf("step %d: GroupsOf mismatch (-want +got):\n%s", i, diff)
		}
		if n := inner.calls.Load(); n != s.wantCalls {
			t.Errorf("step %d: inner called %d times, want %d", i, n, s.wantCalls)
		}
	}

	// MembersOf is a separate key space.
	got, err := c.MembersOf(ctx, "sre@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice@example.com", "bob@example.com"}, got); diff != "" {
		t.Errorf("MembersOf mismatch (-want +got):\n%s", diff)
	}
	if n := inner.calls.Load(); n != 3 {
		t.Errorf("inner called %d times, want 3", n)
	}

	// Callers get copies: changing one does not change the cache.
	got[0] = "mallory@example.com"
	again, _ := c.MembersOf(ctx, "sre@example.com")
	if again[0] != "alice@example.com" {
		t.Errorf("cached answer was modified through a returned slice: %q", again)
	}

	c.Invalidate()
	if _, err := c.MembersOf(ctx, "sre@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := inner.calls.Load(); n != 4 {
		t.Errorf("after Invalidate, inner called %d times, want 4", n)
	}
}

func TestCacheDoesNotCacheErrors(t *testing.T) {
	t.Parallel()
	inner := newCounting()
	inner.fail.Store(1)
	clk := &clock{t: time.Unix(0, 0)}
	c := NewCache(inner, time.Minute, clk.now)

	if _, err := c.GroupsOf(t.Context(), "alice@example.com"); !errors.Is(err, errBackend) {
		t.Fatalf("first call: err %v, want %v", err, errBackend)
	}
	got, err := c.GroupsOf(t.Context(), "alice@example.com")
	if err != nil {
		t.Fatalf("second call, same instant: %v (an error was cached)", err)
	}
	if diff := cmp.Diff([]string{"sre@example.com"}, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if n := inner.calls.Load(); n != 2 {
		t.Errorf("inner called %d times, want 2", n)
	}
}

func TestCacheConcurrentMissesLoadOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		inner := newCounting()
		inner.block = make(chan struct{})
		c := NewCache(inner, time.Minute, nil)

		const n = 8
		results := make([][]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i], errs[i] = c.MembersOf(t.Context(), "sre@example.com") })
		}
		synctest.Wait() // every caller is now blocked: one in inner, the rest waiting on it
		if got := inner.calls.Load(); got != 1 {
			t.Errorf("with %d concurrent misses in flight, inner called %d times, want 1", n, got)
		}
		close(inner.block)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if diff := cmp.Diff([]string{"alice@example.com", "bob@example.com"}, results[i]); diff != "" {
				t.Errorf("caller %d mismatch (-want +got):\n%s", i, diff)
			}
		}
		if got := inner.calls.Load(); got != 1 {
			t.Errorf("inner called %d times, want 1", got)
		}
	})
}

func TestCacheWaiterOutlivesCancelledLoader(t *testing.T) {
	t.Parallel()
	// A caller that gives up must not hand its cancellation to others who
	// were waiting for the same answer.
	synctest.Test(t, func(t *testing.T) {
		inner := newCounting()
		inner.block = make(chan struct{})
		c := NewCache(inner, time.Minute, nil)

		leaderCtx, cancel := context.WithCancel(t.Context())
		var leaderErr, waiterErr error
		var waiterGot []string
		var wg sync.WaitGroup
		wg.Go(func() { _, leaderErr = c.GroupsOf(leaderCtx, "alice@example.com") })
		synctest.Wait() // the leader is inside inner
		wg.Go(func() { waiterGot, waiterErr = c.GroupsOf(t.Context(), "alice@example.com") })
		synctest.Wait() // the waiter waits on the leader's load
		cancel()
		synctest.Wait() // the waiter has started its own load
		if got := inner.calls.Load(); got != 2 {
			t.Errorf("after the leader gave up, inner called %d times, want 2", got)
		}
		close(inner.block)
		wg.Wait()
		if !errors.Is(leaderErr, context.Canceled) {
			t.Errorf("leader err %v, want context.Canceled", leaderErr)
		}
		if waiterErr != nil {
			t.Fatalf("waiter err %v", waiterErr)
		}
		if diff := cmp.Diff([]string{"sre@example.com"}, waiterGot); diff != "" {
			t.Errorf("waiter mismatch (-want +got):\n%s", diff)
		}
	})
}
