package source_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jitpipeline/jit/internal/logging"
	"github.com/jitpipeline/jit/internal/policy/source"
)

// There is no good version to fall back on at startup, so New must fail when
// the first load or compile fails, and a bad config reports every problem.
func TestNewFirstLoadMustSucceed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		cfg         func(l *fakeLoader, c *compiler) source.Config[doc]
		wantErr     []string
		wantCompile int
	}{
		{
			name: "loader_error",
			cfg: func(l *fakeLoader, c *compiler) source.Config[doc] {
				l.fail(errors.New("connection refused"))
				return source.Config[doc]{Loader: l, Compile: c.Compile, Logger: discard}
			},
			wantErr: []string{"failed to load policy from fake:policy", "connection refused"},
		},
		{
			name: "compile_error",
			cfg: func(l *fakeLoader, c *compiler) source.Config[doc] {
				l.set("bad v1", "v1")
				return source.Config[doc]{Loader: l, Compile: c.Compile, Logger: discard}
			},
			wantErr:     []string{"failed to compile policy version v1", "unknown field", "bad expiry"},
			wantCompile: 1,
		},
		{
			name: "empty_version",
			cfg: func(l *fakeLoader, c *compiler) source.Config[doc] {
				l.set("good", "")
				return source.Config[doc]{Loader: l, Compile: c.Compile, Logger: discard}
			},
			wantErr: []string{"empty version"},
		},
		{
			name: "invalid_config_reports_everything",
			cfg: func(*fakeLoader, *compiler) source.Config[doc] {
				return source.Config[doc]{TTL: -time.Second, MaxStale: -time.Second}
			},
			wantErr: []string{"Loader is required", "Compile is required", "TTL must not be negative", "MaxStale must not be negative"},
		},
		{
			name: "max_stale_below_ttl",
			cfg: func(l *fakeLoader, c *compiler) source.Config[doc] {
				return source.Config[doc]{Loader: l, Compile: c.Compile, MaxStale: 10 * time.Second}
			},
			wantErr: []string{"MaxStale (10s) must be at least TTL (30s)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, c := newFakeLoader("good v1", "v1"), newCompiler()
			src, err := source.New(t.Context(), tc.cfg(l, c))
			if err == nil {
				t.Fatalf("New succeeded, want error")
			}
			if src != nil {
				t.Errorf("New returned a source along with error %v", err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if got := c.Total(); got != tc.wantCompile {
				t.Errorf("compile calls = %d, want %d", got, tc.wantCompile)
			}
		})
	}
}

// docs/jit-access.md §3.8: the policy document is cached for
// RESOURCE_CACHE_TIMEOUT; here TTL (default 30 s). No re-load before it runs
// out, one re-load once it has.
func TestTTLCaching(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		wantTTL time.Duration
	}{
		{"default_ttl", 0, source.DefaultTTL},
		{"custom_ttl", 5 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.ttl)
			h.loader.set("good v2", "v2")

			h.clock.Advance(tc.wantTTL - time.Nanosecond)
			for range 3 {
				if text, v := h.current(t); text != "good v1" || v != "v1" {
					t.Fatalf("before TTL: Current = %q, %q; want good v1, v1", text, v)
				}
			}
			if got := h.loader.Calls(); got != 1 {
				t.Fatalf("before TTL: loader calls = %d, want 1 (the initial load)", got)
			}

			h.clock.Advance(time.Nanosecond)
			if text, v := h.current(t); text != "good v2" || v != "v2" {
				t.Fatalf("at TTL: Current = %q, %q; want good v2, v2", text, v)
			}
			h.current(t)
			if got := h.loader.Calls(); got != 2 {
				t.Errorf("after TTL: loader calls = %d, want 2", got)
			}
		})
	}
}

// An unchanged version is not recompiled: the version names the content.
func TestUnchangedVersionNotRecompiled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	for i := range 4 {
		h.clock.Advance(time.Minute)
		if _, v := h.current(t); v != "v1" {
			t.Fatalf("tick %d: version %q, want v1", i, v)
		}
	}
	if got := h.loader.Calls(); got != 5 {
		t.Errorf("loader calls = %d, want 5 (initial + one per TTL)", got)
	}
	if got := h.comp.Calls("good v1"); got != 1 {
		t.Errorf("compile calls = %d, want 1", got)
	}
}

// The core rule: a broken new version is refused, the last good one stays,
// the refusal is logged at ERROR with its fields and reported once (not once
// per TTL tick); a later fixed version is accepted.
func TestBrokenVersionRefusedThenFixed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)

	h.loader.set("bad v2", "v2")
	for range 5 {
		h.clock.Advance(time.Minute)
		if text, v := h.current(t); text != "good v1" || v != "v1" {
			t.Fatalf("with broken v2: Current = %q, %q; want good v1, v1", text, v)
		}
	}
	refusedAt := epoch.Add(time.Minute)
	if diff := cmp.Diff([]source.Rejection{{Version: "v2", Time: refusedAt, KeptVersion: "v1"}},
		h.rejects.Get(), cmpopts.IgnoreFields(source.Rejection{}, "Err")); diff != "" {
		t.Errorf("OnReject calls (-want +got):\n%s", diff)
	}
	if rs := h.rejects.Get(); len(rs) == 1 && !strings.Contains(rs[0].Err.Error(), "bad expiry") {
		t.Errorf("Rejection.Err = %v, want the compile error", rs[0].Err)
	}
	if got := h.comp.Calls("bad v2"); got != 1 {
		t.Errorf("broken v2 compiled %d times, want 1", got)
	}

	errs := h.logs.lines(t, "ERROR")
	if len(errs) != 1 {
		t.Fatalf("ERROR lines = %d, want 1: %v", len(errs), errs)
	}
	got := errs[0]
	want := map[string]any{
		logging.KeySeverity: "ERROR",
		logging.KeyMessage:  "refused new policy version; keeping the version in force",
		"policy_location":   "fake:policy",
		"policy_version":    "v2",
		"kept_version":      "v1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("log field %q = %v, want %v", k, got[k], v)
		}
	}
	if e, _ := got["error"].(string); !strings.Contains(e, "unknown field") || !strings.Contains(e, "bad expiry") {
		t.Errorf("log field error = %q, want every compile problem", e)
	}

	st := h.src.Status()
	if st.Rejected == nil || st.Rejected.Version != "v2" || st.LastError == nil {
		t.Errorf("Status = %+v, want v2 rejected with LastError", st)
	}

	h.loader.set("good v3", "v3")
	h.clock.Advance(time.Minute)
	if text, v := h.current(t); text != "good v3" || v != "v3" {
		t.Fatalf("with fixed v3: Current = %q, %q; want good v3, v3", text, v)
	}
	if st := h.src.Status(); st.Rejected != nil || st.LastError != nil || st.Version != "v3" {
		t.Errorf("Status after fix = %+v, want v3 in force and no rejection", st)
	}
	if got := len(h.rejects.Get()); got != 1 {
		t.Errorf("OnReject calls = %d, want still 1", got)
	}
}

// Each distinct broken version is an event of its own, and going back to the
// version in force clears the refusal without a new event.
func TestEachBrokenVersionReportedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	for _, step := range []struct{ data, version string }{
		{"bad v2", "v2"}, {"bad v2", "v2"}, {"bad v3", "v3"}, {"bad v3", "v3"}, {"good v1", "v1"},
	} {
		h.loader.set(step.data, step.version)
		h.clock.Advance(time.Minute)
		if _, v := h.current(t); v != "v1" {
			t.Fatalf("version in force = %q, want v1", v)
		}
	}
	var got []string
	for _, r := range h.rejects.Get() {
		got = append(got, r.Version)
	}
	if diff := cmp.Diff([]string{"v2", "v3"}, got); diff != "" {
		t.Errorf("rejected versions (-want +got):\n%s", diff)
	}
	if st := h.src.Status(); st.Rejected != nil {
		t.Errorf("Status.Rejected = %+v after the source went back to v1, want nil", st.Rejected)
	}
}

// A loader that names a version whose content is unusable (say a checksum
// mismatch) has that version refused like a compile failure.
func TestVersionErrorRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	h.loader.fail(&source.VersionError{Version: "v2", Err: errors.New("payload CRC32C mismatch")})
	for range 3 {
		h.clock.Advance(time.Minute)
		if _, v := h.current(t); v != "v1" {
			t.Fatalf("version in force = %q, want v1", v)
		}
	}
	rs := h.rejects.Get()
	if len(rs) != 1 || rs[0].Version != "v2" || !strings.Contains(rs[0].Err.Error(), "CRC32C") {
		t.Errorf("rejections = %+v, want one for v2 with the CRC error", rs)
	}
	if n := len(h.logs.lines(t, "ERROR")); n != 1 {
		t.Errorf("ERROR lines = %d, want 1", n)
	}
}

// A VersionError naming the version already in force is a glitch re-reading
// it, not a new version: WARNING, no rejection event, nothing changes.
func TestVersionErrorForVersionInForceIsOutage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	h.loader.fail(&source.VersionError{Version: "v1", Err: errors.New("payload CRC32C mismatch")})
	h.clock.Advance(time.Minute)
	if _, v := h.current(t); v != "v1" {
		t.Fatalf("version in force = %q, want v1", v)
	}
	if n := len(h.rejects.Get()); n != 0 {
		t.Errorf("OnReject calls = %d, want 0", n)
	}
	if n := len(h.logs.lines(t, "WARNING")); n != 1 {
		t.Errorf("WARNING lines = %d, want 1", n)
	}
	if st := h.src.Status(); st.Rejected != nil {
		t.Errorf("Status.Rejected = %+v, want nil", st.Rejected)
	}
}

// A compiler panic is a broken version, not a crash.
func TestCompilerPanicRefused(t *testing.T) {
	t.Parallel()
	loader := newFakeLoader("ok", "v1")
	var rej rejections
	logger, _ := newLogger()
	src, err := source.New(t.Context(), source.Config[string]{
		Loader: loader,
		Compile: func(b []byte) (string, error) {
			if string(b) == "boom" {
				panic("index out of range")
			}
			return string(b), nil
		},
		Logger:   logger,
		OnReject: rej.OnReject,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	loader.set("boom", "v2")
	if err := src.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("Reload = %v, want a refusal mentioning the panic", err)
	}
	if got, v, _ := src.Current(t.Context()); got != "ok" || v != "v1" {
		t.Errorf("Current = %q, %q; want ok, v1", got, v)
	}
	if n := len(rej.Get()); n != 1 {
		t.Errorf("OnReject calls = %d, want 1", n)
	}
}

// A loader error (network, permission) says nothing about the document: the
// last good version stays, a WARNING is logged, no rejection event fires.
func TestLoaderErrorKeepsLastGood(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	h.loader.fail(errors.New("dial tcp: connection refused"))
	for range 2 {
		h.clock.Advance(time.Minute)
		if text, v := h.current(t); text != "good v1" || v != "v1" {
			t.Fatalf("during outage: Current = %q, %q; want good v1, v1", text, v)
		}
	}
	if err := h.src.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Reload during outage = %v, want the loader error", err)
	}
	if n := len(h.rejects.Get()); n != 0 {
		t.Errorf("OnReject calls = %d, want 0", n)
	}
	if n := len(h.logs.lines(t, "ERROR")); n != 0 {
		t.Errorf("ERROR lines = %d, want 0", n)
	}
	warns := h.logs.lines(t, "WARNING")
	if len(warns) == 0 {
		t.Fatalf("no WARNING line for the outage")
	}
	if warns[0]["kept_version"] != "v1" || !strings.Contains(warns[0]["error"].(string), "connection refused") {
		t.Errorf("WARNING line = %v, want kept_version v1 and the error", warns[0])
	}
	if st := h.src.Status(); st.LastError == nil || !st.ReachedAt.Equal(epoch) {
		t.Errorf("Status = %+v, want LastError set and ReachedAt at the initial load", st)
	}

	h.loader.set("good v1", "v1")
	if err := h.src.Reload(t.Context()); err != nil {
		t.Errorf("Reload after recovery = %v", err)
	}
	if st := h.src.Status(); st.LastError != nil {
		t.Errorf("Status.LastError = %v after recovery, want nil", st.LastError)
	}
}

// A caller whose context is gone does not count as a check: the next caller
// re-checks at once instead of waiting another TTL.
func TestCancelledCheckDoesNotCount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	h.loader.set("good v2", "v2")
	h.clock.Advance(time.Minute)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if d, v, err := h.src.Current(ctx); err != nil || d.Text != "good v1" || v != "v1" {
		t.Fatalf("Current(cancelled) = %q, %q, %v; want good v1, v1, nil", d.Text, v, err)
	}
	if text, v := h.current(t); text != "good v2" || v != "v2" {
		t.Errorf("next Current = %q, %q; want good v2, v2 without waiting a TTL", text, v)
	}
	if n := len(h.logs.lines(t, "WARNING")); n != 0 {
		t.Errorf("WARNING lines = %d, want 0 for a cancelled caller", n)
	}
}

// MaxStale makes a long outage fail closed; recovery serves again.
func TestMaxStale(t *testing.T) {
	t.Parallel()
	loader, clk := newFakeLoader("good v1", "v1"), newClock()
	src, err := source.New(t.Context(), source.Config[doc]{
		Loader: loader, Compile: newCompiler().Compile, Now: clk.Now, Logger: discard,
		TTL: 30 * time.Second, MaxStale: 2 * time.Minute,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	loader.fail(errors.New("unreachable"))
	clk.Advance(2 * time.Minute)
	if _, _, err := src.Current(t.Context()); err != nil {
		t.Fatalf("Current at MaxStale = %v, want still served", err)
	}
	clk.Advance(time.Second)
	if _, _, err := src.Current(t.Context()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Current past MaxStale = %v, want an error naming the outage", err)
	}
	loader.set("good v1", "v1")
	clk.Advance(30 * time.Second)
	if _, v, err := src.Current(t.Context()); err != nil || v != "v1" {
		t.Errorf("Current after recovery = %q, %v; want v1, nil", v, err)
	}
}

// Reload checks at once, without waiting for the TTL, and reports the outcome.
func TestReloadForcesCheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Hour)
	h.loader.set("good v2", "v2")
	if err := h.src.Reload(t.Context()); err != nil {
		t.Fatalf("Reload = %v", err)
	}
	if _, v := h.current(t); v != "v2" {
		t.Errorf("after Reload: version %q, want v2", v)
	}
	h.loader.set("bad v3", "v3")
	if err := h.src.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "v3 was refused") {
		t.Errorf("Reload of broken v3 = %v, want a refusal", err)
	}
	if err := h.src.Reload(t.Context()); err == nil {
		t.Errorf("second Reload of broken v3 = nil, want the refusal again")
	}
	if n := len(h.rejects.Get()); n != 1 {
		t.Errorf("OnReject calls = %d, want 1", n)
	}
}

// blockingLoader blocks its second and later calls until released.
type blockingLoader struct {
	mu      sync.Mutex
	calls   int
	entered chan struct{}
	release chan struct{}
}

func (l *blockingLoader) Load(ctx context.Context) ([]byte, string, error) {
	l.mu.Lock()
	l.calls++
	n := l.calls
	l.mu.Unlock()
	if n == 1 {
		return []byte("good v1"), "v1", nil
	}
	l.entered <- struct{}{}
	select {
	case <-l.release:
		return []byte("good v2"), "v2", nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

// Concurrent callers after the TTL: exactly one re-loads; the others get the
// version in force without waiting for it (checked with synctest: while the
// reload is blocked, every other caller has already returned).
func TestConcurrentCurrentOneReload(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		loader := &blockingLoader{entered: make(chan struct{}), release: make(chan struct{})}
		clk := newClock()
		src, err := source.New(t.Context(), source.Config[doc]{
			Loader: loader, Compile: newCompiler().Compile, Now: clk.Now, TTL: time.Minute, Logger: discard,
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		clk.Advance(time.Minute)

		const callers = 8
		results := make(chan string, callers)
		for range callers {
			go func() {
				_, v, err := src.Current(context.Background())
				if err != nil {
					v = err.Error()
				}
				results <- v
			}()
		}
		<-loader.entered
		synctest.Wait() // every goroutine has returned or is durably blocked
		if got := len(results); got != callers-1 {
			t.Fatalf("%d callers returned while the reload was in progress, want %d", got, callers-1)
		}
		for range callers - 1 {
			if v := <-results; v != "v1" {
				t.Errorf("waiting-free caller got %q, want v1", v)
			}
		}

		// A forced Reload waits for the one in progress; its context can end the wait.
		ctx, cancel := context.WithCancel(context.Background())
		reloadErr := make(chan error, 1)
		go func() { reloadErr <- src.Reload(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-reloadErr; err == nil || !errors.Is(err, context.Canceled) {
			t.Errorf("Reload while busy, cancelled = %v, want context.Canceled", err)
		}

		close(loader.release)
		if v := <-results; v != "v2" {
			t.Errorf("reloading caller got %q, want v2", v)
		}
		if _, v, _ := src.Current(context.Background()); v != "v2" {
			t.Errorf("after reload: version %q, want v2", v)
		}
		loader.mu.Lock()
		defer loader.mu.Unlock()
		if loader.calls != 2 {
			t.Errorf("loader calls = %d, want 2 (initial + one reload)", loader.calls)
		}
	})
}

// Many goroutines hammering Current across TTL boundaries under -race: the
// version only moves forward and the loader is asked at most once per TTL.
func TestConcurrentCurrentRace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			last := 1
			for i := range 50 {
				if g == 0 && i%10 == 0 {
					n := 2 + i/10
					h.loader.set(fmt.Sprintf("good v%d", n), fmt.Sprintf("v%d", n))
					h.clock.Advance(time.Minute)
				}
				_, v, err := h.src.Current(t.Context())
				if err != nil {
					t.Errorf("Current: %v", err)
					return
				}
				n, _ := strconv.Atoi(strings.TrimPrefix(v, "v"))
				if n < last {
					t.Errorf("version went back from v%d to %s", last, v)
				}
				last = n
			}
		})
	}
	wg.Wait()
	if got := h.loader.Calls(); got > 1+5 {
		t.Errorf("loader calls = %d, want at most 6 (initial + one per TTL)", got)
	}
}
