package iambinding

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/google/go-cmp/cmp"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/jitpipeline/jit/internal/iamqueue"
	"github.com/jitpipeline/jit/internal/ledger/sqlite"
)

// instance is one function instance: a Writer with a connection of its
// own to the local IAM, sharing nothing with the others but the queue.
type instance struct {
	w   *Writer
	rec *recorder
}

func (e *env) instance(t testing.TB, q iamqueue.Queue, configure func(*Config)) *instance {
	t.Helper()
	client, err := resourcemanager.NewProjectsClient(context.Background(), e.dial...)
	if err != nil {
		t.Fatalf("NewProjectsClient: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	rec := newRecorder(t, client)
	cfg := Config{
		Projects:         rec,
		Now:              e.clock.Now,
		Backoff:          gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		Logger:           slog.New(slog.DiscardHandler),
		Queue:            q,
		PollInterval:     2 * time.Millisecond,
		MinWriteInterval: time.Millisecond,
	}
	if configure != nil {
		configure(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &instance{w: w, rec: rec}
}

// newQueue is the embedded ledger's queue, in a file of the test's own.
func newQueue(t testing.TB) *sqlite.IAMQueue {
	t.Helper()
	l, err := sqlite.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l.IAMQueue()
}

// waitPending returns once n entries are pending on resource.
func waitPending(t *testing.T, q iamqueue.Queue, resource string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := q.Pending(t.Context(), resource, 1000)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		if len(entries) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries pending after 10s, want %d", len(entries), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdFirstRead makes in's first policy read wait, once it has returned,
// until release is closed; started is closed when it is held.
func holdFirstRead(in *instance) (started, release chan struct{}) {
	started, release = make(chan struct{}), make(chan struct{})
	in.rec.afterGet = func(n int, _ string) {
		if n == 1 {
			close(started)
			<-release
		}
	}
	return started, release
}

// Issue 14: writers that share only the ledger (function instances)
// coalesce. The first holds the lease and its read is held; ten others
// queue their changes meanwhile, and the holder's next single write
// applies all ten.
func TestQueueCoalescesAcrossWriters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	q := newQueue(t)
	const others = 10
	first := e.instance(t, q, nil)
	started, release := holdFirstRead(first)
	out := make(chan applied, others+1)
	apply := func(in *instance, i int) {
		member := fmt.Sprintf("user:u%02d@example.com", i)
		res, err := in.w.Apply(t.Context(), change(project, member, "", window1(member)))
		out <- applied{member, res, err}
	}
	go apply(first, 0)
	<-started
	rest := make([]*instance, others)
	for i := range rest {
		rest[i] = e.instance(t, q, nil)
		go apply(rest[i], i+1)
	}
	waitPending(t, q, project, others+1) // the holder's own entry is not done yet
	close(release)

	writes := map[string]int{}
	for range others + 1 {
		a := <-out
		if a.err != nil {
			t.Errorf("Apply for %s: %v", a.member, a.err)
		}
		writes[a.member] = a.res.Writes
	}
	if diff := cmp.Diff(map[string]int{"user:u00@example.com": 2}, writes, cmpNonZero); diff != "" {
		t.Errorf("Result.Writes per caller, want all by the holder (-want +got):\n%s", diff)
	}
	if got := e.srv.WriteCount(); got != 2 {
		t.Errorf("IAM saw %d writes, want 2: the holder's own and one for the ten queued", got)
	}
	for _, in := range rest {
		if gets, sets := in.rec.counts(); sets != 0 {
			t.Errorf("a waiting writer read %d and wrote %d times, want no writes", gets, sets)
		}
	}
	for i := 0; i <= others; i++ {
		if m := fmt.Sprintf("user:u%02d@example.com", i); !e.hasRole(t, m, roleGranted, project, t0) {
			t.Errorf("%s has no access", m)
		}
	}
}

// cmpNonZero compares maps of counts leaving out the zeros.
var cmpNonZero = cmp.FilterValues(func(a, b map[string]int) bool { return true }, cmp.Transformer("nonzero", func(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}))

// A holder that stops mid-way (dead, or stalled past its lease) is taken
// over once its lease ends, and every change lands exactly as wanted,
// the orphaned ones included; a stalled holder that wakes up finds its
// work done and writes nothing wrong (its stale write is ABORTED, the
// re-read shows the changes in place).
func TestQueueTakeover(t *testing.T) {
	t.Parallel()
	const lease = 300 * time.Millisecond
	short := func(c *Config) { c.LeaseDuration = lease }
	tests := []struct {
		name string
		run  func(t *testing.T, e *env, q *sqlite.IAMQueue) (members []string)
	}{
		{"dead holder", func(t *testing.T, e *env, q *sqlite.IAMQueue) []string {
			// What a process that died holding the lease leaves: the lease
			// and its own entry.
			if _, err := q.Lease(t.Context(), project, "dead-holder", lease); err != nil {
				t.Fatal(err)
			}
			data, err := json.Marshal([]Change{change(project, "user:dead@example.com", "", window1("dead"))})
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Put(t.Context(), project, "dead-entry", data); err != nil {
				t.Fatal(err)
			}
			in := e.instance(t, q, short)
			start := time.Now()
			res, err := in.w.Apply(t.Context(), change(project, "user:alive@example.com", "", window1("alive")))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if d := time.Since(start); d < lease/2 {
				t.Errorf("Apply returned after %v, before the dead holder's lease could end", d)
			}
			if res.Writes != 1 {
				t.Errorf("Result.Writes = %d, want 1: the orphaned change and this one together", res.Writes)
			}
			return []string{"user:dead@example.com", "user:alive@example.com"}
		}},
		{"stalled holder", func(t *testing.T, e *env, q *sqlite.IAMQueue) []string {
			a, b := e.instance(t, q, short), e.instance(t, q, short)
			started, release := holdFirstRead(a)
			errA := make(chan error, 1)
			go func() {
				_, err := a.w.Apply(t.Context(), change(project, "user:a@example.com", "", window1("a")))
				errA <- err
			}()
			<-started
			// b waits out a's lease, takes over and applies both.
			if _, err := b.w.Apply(t.Context(), change(project, "user:b@example.com", "", window1("b"))); err != nil {
				t.Errorf("Apply by the new holder: %v", err)
			}
			close(release)
			if err := <-errA; err != nil {
				t.Errorf("Apply by the stalled holder: %v", err)
			}
			if got := e.srv.AbortedCount(); got != 1 {
				t.Errorf("AbortedCount = %d, want 1: the stalled holder's stale write", got)
			}
			return []string{"user:a@example.com", "user:b@example.com"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			base := e.seed(t, project, unrelated()...)
			q := newQueue(t)
			members := tt.run(t, e, q)
			var want []string
			for _, m := range members {
				if !e.hasRole(t, m, roleGranted, project, t0) {
					t.Errorf("%s has no access", m)
				}
				want = append(want, m)
			}
			// Exactly one new binding per member: nothing doubled or lost.
			var got []string
			for _, b := range bindingsWithout(e.srv.Policy(project), func(b *iampb.Binding) bool {
				return slices.ContainsFunc(base.GetBindings(), func(o *iampb.Binding) bool { return proto.Equal(o, b) })
			}) {
				got = append(got, b.GetMembers()...)
			}
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("members of the new bindings (-want +got):\n%s", diff)
			}
			if entries, err := q.Pending(t.Context(), project, 10); err != nil || len(entries) != 0 {
				t.Errorf("Pending after the takeover = %v, %v; want none", entries, err)
			}
		})
	}
}

// "Each caller gets its own result/error" across writers: IAM rejects the
// combined write (a condition on a basic role), the holder applies the
// queued entries one by one, and only the bad one's caller fails, with
// IAM's code.
func TestQueueBadChangeFailsOnlyItsCaller(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	q := newQueue(t)
	holder := e.instance(t, q, nil)
	started, release := holdFirstRead(holder)
	out := make(chan applied, 3)
	apply := func(in *instance, c Change) {
		res, err := in.w.Apply(t.Context(), c)
		out <- applied{c.Member, res, err}
	}
	go apply(holder, change(project, "user:alice@example.com", "", window1("a")))
	<-started
	go apply(e.instance(t, q, nil), change(project, "user:bob@example.com", "", window1("b")))
	go apply(e.instance(t, q, nil), Change{Key: Key{Resource: project, Role: "roles/viewer", Member: "user:carol@example.com"}, Windows: []Window{window1("c")}})
	waitPending(t, q, project, 3)
	close(release)

	got := map[string]codes.Code{}
	for range 3 {
		a := <-out
		got[a.member] = status.Code(a.err)
	}
	want := map[string]codes.Code{"user:alice@example.com": codes.OK, "user:bob@example.com": codes.OK, "user:carol@example.com": codes.InvalidArgument}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("codes per caller (-want +got):\n%s", diff)
	}
	// alice alone; bob+carol refused; bob alone; carol alone.
	if _, sets := holder.rec.counts(); sets != 4 {
		t.Errorf("SetIamPolicy calls %d, want 4", sets)
	}
	for _, m := range []string{"user:alice@example.com", "user:bob@example.com"} {
		if !e.hasRole(t, m, roleGranted, project, t0) {
			t.Errorf("%s has no access", m)
		}
	}
}

// A policy that cannot be read fails every queued caller as a ReadError,
// so that Unreadable (the grant function's "nothing was written, no retry
// will help") judges a change applied by another writer as its own.
func TestQueueUnreadableReachesWaiters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	q := newQueue(t)
	const missing = "projects/missing"
	holder, waiter := e.instance(t, q, nil), e.instance(t, q, nil)
	held, release := make(chan struct{}), make(chan struct{})
	holder.rec.getErr = func(n int) error {
		if n == 1 {
			close(held)
			<-release
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() {
		_, err := holder.w.Apply(t.Context(), change(missing, "user:a@example.com", "", window1("a")))
		errs <- err
	}()
	<-held
	go func() {
		_, err := waiter.w.Apply(t.Context(), change(missing, "user:b@example.com", "", window1("b")))
		errs <- err
	}()
	waitPending(t, q, missing, 2)
	close(release)
	for range 2 {
		err := <-errs
		if diff := cmp.Diff([]string{missing}, Unreadable(err)); diff != "" {
			t.Errorf("Unreadable(%v) (-want +got):\n%s", err, diff)
		}
	}
	if gets, _ := waiter.rec.counts(); gets != 0 {
		t.Errorf("the waiter read %d times, want 0: the holder reads for both", gets)
	}
}

// Resource Manager's write quota (10/s per consumer project): holders
// space their writes on one resource by MinWriteInterval, and a new holder
// honours the time of the last holder's write, kept with the lease.
func TestQueuePacing(t *testing.T) {
	t.Parallel()
	const interval = 40 * time.Millisecond
	e := newEnv(t, nil)
	q := newQueue(t)
	var recs []*recorder
	for i := range 4 {
		in := e.instance(t, q, func(c *Config) { c.MinWriteInterval = interval })
		recs = append(recs, in.rec)
		m := fmt.Sprintf("user:u%d@example.com", i)
		if _, err := in.w.Apply(t.Context(), change(project, m, "", window1(m))); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	var times []time.Time
	for _, r := range recs {
		r.mu.Lock()
		times = append(times, r.setTimes...)
		r.mu.Unlock()
	}
	slices.SortFunc(times, time.Time.Compare)
	if len(times) != 4 {
		t.Fatalf("%d writes, want 4", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < interval {
			t.Errorf("write %d came %v after the one before, want at least %v", i, gap, interval)
		}
	}
}

// Config checks the queue settings with the others.
func TestQueueConfig(t *testing.T) {
	t.Parallel()
	c := Config{Projects: &recorder{}, LeaseDuration: -1, PollInterval: -1, MinWriteInterval: -1, MaxBatch: -1}
	err := c.Validate()
	for _, want := range []string{"LeaseDuration", "PollInterval", "MinWriteInterval", "MaxBatch"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	c = Config{Projects: &recorder{}, LeaseDuration: time.Second, MinWriteInterval: time.Second}
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted a lease shorter than 10 write intervals")
	}
	w, err := New(Config{Projects: &recorder{}, Queue: newQueue(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := []time.Duration{w.cfg.LeaseDuration, w.cfg.PollInterval, w.cfg.MinWriteInterval, time.Duration(w.cfg.MaxBatch)}
	want := []time.Duration{DefaultLeaseDuration, DefaultPollInterval, DefaultMinWriteInterval, DefaultMaxBatch}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// Issue 14's goal as a test: 200 concurrent grants on one project through
// 200 writers with connections of their own, sharing the queue: all land,
// none is given up, no write is ABORTED, and each write carries at least
// ten grants.
func TestQueueTwoHundredWritersOnOneProject(t *testing.T) {
	t.Parallel()
	const users = 200
	e := newEnv(t, nil)
	q := newQueue(t)
	ins := make([]*instance, users)
	for i := range ins {
		// The local pipeline's poll: 200 waiters looking every 2 ms would
		// only keep the race detector busy.
		ins[i] = e.instance(t, q, func(c *Config) { c.PollInterval = 10 * time.Millisecond })
	}
	member := func(i int) string { return fmt.Sprintf("user:user%03d@example.com", i) }
	errs := make(chan error, users)
	start := make(chan struct{})
	for i, in := range ins {
		go func() {
			<-start
			_, err := in.w.Apply(t.Context(), change(project, member(i), "", window1(member(i))))
			errs <- err
		}()
	}
	began := time.Now()
	close(start)
	for range users {
		if err := <-errs; err != nil {
			t.Errorf("Apply: %v", err)
		}
	}
	t.Logf("applied in %v", time.Since(began))
	writes, aborted := e.srv.WriteCount(), e.srv.AbortedCount()
	t.Logf("200 grants through 200 writers: %d IAM writes, %d ABORTED", writes, aborted)
	if aborted != 0 || writes == 0 || users/writes < 10 {
		t.Errorf("%d writes (%d ABORTED) for %d grants, want none ABORTED and at least 10 grants per write", writes, aborted, users)
	}
	for i := range users {
		if !e.hasRole(t, member(i), roleGranted, project, t0) {
			t.Errorf("%s has no access", member(i))
		}
	}
}

// flakyQueue is the real queue with the first failures of Outcome and
// Lease replaced by the error a loaded Firestore gives ("Transaction lock
// timeout"), as the recorder injects IAM's errors.
type flakyQueue struct {
	iamqueue.Queue
	mu    sync.Mutex
	fails int
}

func (f *flakyQueue) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails == 0 {
		return nil
	}
	f.fails--
	return status.Error(codes.Aborted, "Transaction lock timeout.")
}

func (f *flakyQueue) Outcome(ctx context.Context, resource, id string) (iamqueue.Outcome, error) {
	if err := f.fail(); err != nil {
		return iamqueue.Outcome{}, err
	}
	return f.Queue.Outcome(ctx, resource, id)
}

func (f *flakyQueue) Lease(ctx context.Context, resource, holder string, d time.Duration) (iamqueue.Lease, error) {
	if err := f.fail(); err != nil {
		return iamqueue.Lease{}, err
	}
	return f.Queue.Lease(ctx, resource, holder, d)
}

// A queue that fails to answer now and then does not make a waiter give
// up; one that keeps failing does, after MaxAttempts looks.
func TestQueueFailuresWhileWaiting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fails   int
		wantErr bool
	}{
		{"a few", 5, false},
		{"for good", 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			q := &flakyQueue{Queue: newQueue(t), fails: tt.fails}
			in := e.instance(t, q, func(c *Config) { c.MaxAttempts = 10 })
			_, err := in.w.Apply(t.Context(), change(project, "user:alice@example.com", "", window1("a")))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Apply error = %v, want error %v", err, tt.wantErr)
			}
			if got := e.hasRole(t, "user:alice@example.com", roleGranted, project, t0); got == tt.wantErr {
				t.Errorf("HasRole = %v, want %v", got, !tt.wantErr)
			}
		})
	}
}
