// Package iambinding writes and removes the time-bound IAM bindings that are
// the access a grant confers, and reads them back to verify a revocation
// (docs/architecture.md §3). It is the most safety-critical code of the pipeline, so the
// rules of the IAM API are kept to the letter (docs/google-cloud.md §1, §2):
//
//   - every read asks for policy version 3 and every write sends version 3,
//     so conditions are never stripped or rendered as _withcond_ roles;
//   - every write sends back the etag of the read it is based on, and on
//     ABORTED (a concurrent change) the whole read-modify-write is retried
//     with exponential backoff and jitter, as the Go clients do not (so
//     are UNAVAILABLE and RESOURCE_EXHAUSTED, the write quota);
//   - only the bindings a change is about are touched, plus expired JIT
//     activations, which are purged on every write because IAM never
//     removes them and they count against the policy limits forever.
//
// Writes to one resource are coalesced: while one read-modify-write is in
// flight, further changes queue up and are all applied by the next one, so
// hundreds of concurrent grants on one project cost a handful of writes
// instead of a storm of ABORTED retries.
//
// # Across processes: the write queue
//
// Without Config.Queue that coalescing reaches only the calls of one
// Writer. On Google Cloud every function instance has its own, so 200
// concurrent activations on one project spread over 200 instances combine
// nothing: each does its own read-modify-write and all but one meet
// ABORTED, again and again (issue 14: 1,671 of 1,776 writes ABORTED, 95
// of 200 activations given up). With a Queue (the grant ledger's:
// iamqueue.Queue) the writes are serialised through the ledger by flat
// combining:
//
//  1. Apply validates and plans as ever, then, per resource, puts its
//     changes in the queue under an ID of its own (the JSON of the Change
//     values).
//  2. It loops: if its entry is done, it returns the entry's result;
//     otherwise it tries to take the resource's writer lease; if another
//     writer holds it, it waits PollInterval (jittered) and looks again.
//  3. The lease holder drains: all pending entries (up to MaxBatch, oldest
//     first) in ONE read-modify-write — with the usual retry on ABORTED and,
//     if IAM rejects the combined write for another reason, each entry on
//     its own so that only the bad one fails — then records each entry's
//     result, renews its lease, and repeats until nothing is pending; then
//     it releases the lease.
//
// Serialising through the ledger was chosen over max-instances=1 on the
// functions, which would cap the grant function's throughput and make one
// instance a single point of failure, and over relying on how Eventarc
// and Pub/Sub push spread deliveries, which they do over any number of
// instances. The ledger is already shared by every instance and offers
// the transactions a lease needs.
//
// Failure and takeover: a holder that dies (or stalls) leaves its lease to
// expire (LeaseDuration, default 15 s); the next writer to look takes it
// over and applies whatever is pending, the dead holder's entries
// included. Re-applying an entry is harmless, because a Change states the
// whole access its key should have (not a delta): a stalled holder that
// wakes up finds its write ABORTED by the etag, re-reads, and sees nothing
// left to change. A holder whose caller gives up stops, records no
// outcome (its cancellation is not a fact about the changes) and releases
// the lease at once; its pending entries are applied by the next holder.
// The lease is renewed after every batch, not during one: a batch that
// outlasts it (a hung RPC, long ABORTED retries) lets the next writer take
// over rather than wait, and the etag keeps the two from overwriting each
// other. Under at-least-once delivery a redelivered activation is a new Apply
// with a new entry, applied idempotently. Errors reach every caller with
// their gRPC code, and a ReadError stays one, so Unreadable works for
// changes another writer applied. Outcomes are deleted when read, and
// after iamqueue.OutcomeTTL if never read: the queue does not grow.
//
// Purge and Verify stay in-process: Purge is the sweep's janitor, with
// no activation waiting on it, and its writes meet a lease holder's only
// through the etag retry; Verify only reads.
//
// Quota arithmetic: Resource Manager allows a consumer project 10
// setIamPolicy writes per second and 600 per minute. The lease holder
// leaves at least MinWriteInterval (default 100 ms) between its
// SetIamPolicy calls on a resource, ABORTED retries and one-by-one
// fall-backs included, and the time of the last write is kept with the
// lease, so a new holder waits out the rest of the interval too: one
// resource never sees more than 1 s ÷ 100 ms = 10 writes/s, which is also
// 600/min. Each write carries up to MaxBatch (100) changes, so a burst of
// 200 activations on one project costs about 3 writes (≈ 0.3 s) instead
// of hundreds. The quota is per consumer project, not per resource: n
// resources busy at the same time may reach n × 10 writes/s, but only
// while each has activations arriving faster than one per 100 ms — and
// coalescing makes a write per 100 ms the most any burst can cost on a
// resource, however large the burst.
package iambinding

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/genproto/googleapis/type/expr"

	"github.com/jitpipeline/jit/internal/iamqueue"
)

// IAMClient is the slice of the Resource Manager v3 clients the writer
// needs; *resourcemanager.ProjectsClient, FoldersClient and
// OrganizationsClient satisfy it as they are.
type IAMClient interface {
	GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error)
	SetIamPolicy(ctx context.Context, req *iampb.SetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error)
}

// Defaults of Config.
const (
	DefaultMaxAttempts       = 10
	DefaultBackoffInitial    = 100 * time.Millisecond
	DefaultBackoffMax        = 5 * time.Second
	DefaultBackoffMultiplier = 2

	// Defaults of the queue settings of Config (see the package doc).
	DefaultLeaseDuration    = 15 * time.Second
	DefaultPollInterval     = 50 * time.Millisecond
	DefaultMinWriteInterval = 100 * time.Millisecond
	DefaultMaxBatch         = 100
)

// MaxDescription is the longest condition description written, in bytes.
const MaxDescription = 256

// Config configures a Writer.
type Config struct {
	// Projects, Folders and Organizations read and write the policies of
	// each kind of resource. At least one is required; a change on a kind
	// without a client is refused.
	Projects, Folders, Organizations IAMClient
	// Now is the clock that decides which windows and bindings have ended.
	// Default time.Now.
	Now func() time.Time
	// Backoff paces the retries of a read-modify-write after ABORTED or
	// UNAVAILABLE; each pause is drawn at random up to the current period
	// (full jitter). Zero fields take the defaults: 100 ms initial, 5 s
	// maximum, multiplier 2.
	Backoff gax.Backoff
	// MaxAttempts bounds the read-modify-write attempts per batch. Default 10.
	MaxAttempts int
	// Logger receives a record of every policy write and retry. Default
	// slog.Default().
	Logger *slog.Logger

	// Queue, if set, serialises the writes of every Writer sharing it
	// (function instances sharing the ledger) through a durable
	// per-resource queue with a writer lease (see the package doc). Nil
	// coalesces only the calls of this Writer, in memory.
	Queue iamqueue.Queue
	// LeaseDuration is how long a queue's writer lease lasts unless
	// renewed: the longest a dead holder delays the others. Default 15 s.
	LeaseDuration time.Duration
	// PollInterval bounds a waiting caller's pause between looks at its
	// entry and the lease; each pause is drawn at random between a fifth
	// of it and all of it, and after four looks the bound grows by half
	// per look up to four times PollInterval. Default 50 ms.
	PollInterval time.Duration
	// MinWriteInterval is the least time a lease holder leaves between two
	// SetIamPolicy calls on one resource, honoured across holders.
	// Default 100 ms: at most 10 writes/s per resource.
	MinWriteInterval time.Duration
	// MaxBatch bounds the queued entries one read-modify-write applies.
	// Default 100.
	MaxBatch int
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Projects == nil && c.Folders == nil && c.Organizations == nil {
		errs = append(errs, errors.New("at least one of Projects, Folders and Organizations is required"))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d must not be negative", c.MaxAttempts))
	}
	if c.Backoff.Initial < 0 {
		errs = append(errs, fmt.Errorf("Backoff.Initial %v must not be negative", c.Backoff.Initial))
	}
	if c.Backoff.Max < 0 {
		errs = append(errs, fmt.Errorf("Backoff.Max %v must not be negative", c.Backoff.Max))
	}
	if c.Backoff.Initial > 0 && c.Backoff.Max > 0 && c.Backoff.Initial > c.Backoff.Max {
		errs = append(errs, fmt.Errorf("Backoff.Initial %v must not exceed Backoff.Max %v", c.Backoff.Initial, c.Backoff.Max))
	}
	if c.Backoff.Multiplier != 0 && c.Backoff.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("Backoff.Multiplier %v must be at least 1", c.Backoff.Multiplier))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"LeaseDuration", c.LeaseDuration}, {"PollInterval", c.PollInterval}, {"MinWriteInterval", c.MinWriteInterval}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v must not be negative", d.name, d.v))
		}
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("MaxBatch %d must not be negative", c.MaxBatch))
	}
	if c.LeaseDuration > 0 && c.LeaseDuration < 10*c.MinWriteInterval {
		// A holder must be able to write a few times per lease.
		errs = append(errs, fmt.Errorf("LeaseDuration %v must be at least 10 × MinWriteInterval %v", c.LeaseDuration, c.MinWriteInterval))
	}
	return errors.Join(errs...)
}

// Writer applies changes to IAM policies. It is safe for concurrent use;
// concurrent changes to one resource are coalesced.
type Writer struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	queues map[string]*queue // resource -> changes waiting for its next write

	// id names this Writer in the holders of queue leases.
	id string

	// onQueued, if set, is called (under mu) after a request was queued for
	// resource behind a write in flight, with the number now waiting. Tests
	// use it to make coalescing deterministic.
	onQueued func(resource string, waiting int)
}

// New returns a Writer.
func New(cfg Config) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid iambinding config: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Backoff.Initial == 0 {
		cfg.Backoff.Initial = DefaultBackoffInitial
	}
	if cfg.Backoff.Max == 0 {
		cfg.Backoff.Max = max(DefaultBackoffMax, cfg.Backoff.Initial)
	}
	if cfg.Backoff.Multiplier == 0 {
		cfg.Backoff.Multiplier = DefaultBackoffMultiplier
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = max(DefaultLeaseDuration, 10*cfg.MinWriteInterval)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MinWriteInterval == 0 {
		cfg.MinWriteInterval = min(DefaultMinWriteInterval, cfg.LeaseDuration/10)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Writer{cfg: cfg, log: logger, queues: make(map[string]*queue), id: randomID()}, nil
}

// Key names the access of one member for one (resource, role, resource
// condition): at most one temporary binding on the resource's policy.
type Key struct {
	// Resource is projects/ID, folders/ID or organizations/ID.
	Resource string
	// Role is roles/…, or a custom role's full name.
	Role string
	// Condition is the policy's resource condition, AND-ed into the time
	// window; "" for none (grant.Privilege.Condition).
	Condition string
	// Member is the principal, e.g. "user:alice@example.com".
	Member string
}

func (k Key) String() string {
	s := k.Member + " " + k.Role + " on " + k.Resource
	if k.Condition != "" {
		s += " if " + k.Condition
	}
	return s
}

// Window is the time one active grant gives the key: from Start
// (inclusive) to End (exclusive).
type Window struct {
	Start, End time.Time
	// GrantID identifies the grant, for logs.
	GrantID string
	// Description says who approved and why, as iamcond.Description
	// formats it; it becomes the binding's condition description.
	Description string
}

// Change is the access a key should have: the union of the windows of the
// member's active grants for that key. No windows (or only windows that
// have ended) means no access: the binding is removed.
type Change struct {
	Key
	Windows []Window
}

// Result reports what Apply did.
type Result struct {
	// Writes counts the SetIamPolicy calls made for this Apply, failed
	// ones included. A write that served several coalesced Apply calls is
	// counted for exactly one of them, so summing Writes over concurrent
	// calls gives the number of calls IAM saw.
	Writes int
	// Policies holds, per resource, the policy as written (or as read, when
	// nothing had to change).
	Policies map[string]*iampb.Policy
}

// Check is the verdict of Verify on one key: the "revocation verified"
// record when the change wants no access.
type Check struct {
	Key
	// At is the time (Config.Now) the windows were judged at.
	At time.Time
	// Want is the condition the key's binding should have, nil for none.
	Want *expr.Expr
	// Found are the conditions of the member's temporary bindings for the
	// key on the policy read back.
	Found []*expr.Expr
	// Verified is true when the policy is exactly as wanted: one binding
	// with condition Want, or none.
	Verified bool
	// Problem says why Verified is false; "" otherwise.
	Problem string
}

// Apply makes the policies match the changes: for each key, every
// temporary binding of its member, role and resource condition is removed
// (any title, active or expired: docs/jit-access.md §4), and, if a window
// has not ended, one binding is added that spans the union of the windows,
// so overlapping grants never cut each other short; the grant ledger
// decides which grant is active. A write also purges every expired JIT
// activation on the policy (docs/google-cloud.md §1). No other binding is touched, and
// nothing is written when the policy already matches.
//
// Changes to one resource are written by one read-modify-write, possibly
// together with the changes of concurrent calls; Apply returns once its
// changes are written. Errors are reported per resource; policies of the
// resources that succeeded are in the Result.
func (w *Writer) Apply(ctx context.Context, changes ...Change) (Result, error) {
	groups, err := w.plan(changes)
	if err != nil {
		return Result{}, err
	}
	reqs := make([]*request, len(groups))
	for i, g := range groups {
		reqs[i] = &request{ctx: ctx, changes: g.changes, done: make(chan outcome, 1)}
		if w.cfg.Queue != nil {
			go func() { reqs[i].done <- w.viaQueue(ctx, g) }()
			continue
		}
		w.submit(g.resource, g.client, reqs[i])
	}
	return w.await(ctx, groups, reqs)
}

// Purge removes the expired JIT activations of anyone from the policies of
// resources, writing only where there are some: the sweep's janitor for
// policies no grant has written to lately.
func (w *Writer) Purge(ctx context.Context, resources ...string) (Result, error) {
	var errs []error
	var groups []group
	seen := map[string]bool{}
	for _, r := range resources {
		c, err := w.client(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !seen[r] {
			seen[r] = true
			groups = append(groups, group{resource: r, client: c})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Result{}, fmt.Errorf("invalid purge: %w", err)
	}
	reqs := make([]*request, len(groups))
	for i, g := range groups {
		reqs[i] = &request{ctx: ctx, purge: true, done: make(chan outcome, 1)}
		w.submit(g.resource, g.client, reqs[i])
	}
	return w.await(ctx, groups, reqs)
}

// await collects the outcomes of requests submitted for groups.
func (w *Writer) await(ctx context.Context, groups []group, reqs []*request) (Result, error) {
	res := Result{Policies: make(map[string]*iampb.Policy, len(groups))}
	var errs []error
	for i, req := range reqs {
		select {
		case o := <-req.done:
			res.Writes += o.writes
			if o.err != nil {
				errs = append(errs, fmt.Errorf("failed to update the IAM policy of %s: %w", groups[i].resource, o.err))
				continue
			}
			res.Policies[groups[i].resource] = o.policy
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("failed to update the IAM policy of %s: %w", groups[i].resource, context.Cause(ctx)))
		}
	}
	return res, errors.Join(errs...)
}

// Verify reads each resource's policy back (version 3) and reports, per
// change in order, whether the key's binding is exactly as Apply would
// write it now: present with the union window, or absent. Only the
// member's temporary bindings for the key are judged; an unconditional
// binding of the same role is not a JIT activation and is not reported.
// A resource that cannot be read is reported in the error and its
// changes are left out of the checks.
func (w *Writer) Verify(ctx context.Context, changes ...Change) ([]Check, error) {
	groups, err := w.plan(changes)
	if err != nil {
		return nil, err
	}
	type read struct {
		policy *iampb.Policy
		err    error
	}
	reads := make([]read, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			p, err := w.read(ctx, g.resource, g.client)
			reads[i] = read{p, err}
		})
	}
	wg.Wait()

	now := w.cfg.Now()
	byResource := map[string]*iampb.Policy{}
	var errs []error
	for i, g := range groups {
		if reads[i].err != nil {
			errs = append(errs, fmt.Errorf("failed to verify %s: %w", g.resource, reads[i].err))
			continue
		}
		byResource[g.resource] = reads[i].policy
	}
	var checks []Check
	for _, c := range orderedChanges(groups) {
		p, ok := byResource[c.Resource]
		if !ok {
			continue
		}
		checks = append(checks, c.check(p, now))
	}
	return checks, errors.Join(errs...)
}

// group is the changes of one Apply call for one resource.
type group struct {
	resource string
	client   IAMClient
	changes  []planned
}

// orderedChanges lists the planned changes of groups in the order they
// were given to Apply or Verify.
func orderedChanges(groups []group) []planned {
	var all []planned
	for _, g := range groups {
		all = append(all, g.changes...)
	}
	slices.SortStableFunc(all, func(a, b planned) int { return a.index - b.index })
	return all
}

// plan validates changes, reporting every problem at once, and groups them
// by resource in order of first appearance.
func (w *Writer) plan(changes []Change) ([]group, error) {
	var errs []error
	var groups []group
	at := map[string]int{}
	seen := map[Key]bool{}
	for i, c := range changes {
		p, err := newPlanned(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("change %d (%s): %w", i, c.Key, err))
			continue
		}
		p.index = i
		client, err := w.client(c.Resource)
		if err != nil {
			errs = append(errs, fmt.Errorf("change %d (%s): %w", i, c.Key, err))
			continue
		}
		if seen[p.norm] {
			errs = append(errs, fmt.Errorf("change %d (%s): the same key appears twice", i, c.Key))
			continue
		}
		seen[p.norm] = true
		j, ok := at[c.Resource]
		if !ok {
			j = len(groups)
			at[c.Resource] = j
			groups = append(groups, group{resource: c.Resource, client: client})
		}
		groups[j].changes = append(groups[j].changes, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid changes: %w", err)
	}
	return groups, nil
}

// client returns the client for resource's kind.
func (w *Writer) client(resource string) (IAMClient, error) {
	collection, id, ok := strings.Cut(resource, "/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, fmt.Errorf("resource %q is not projects/ID, folders/ID or organizations/ID", resource)
	}
	var c IAMClient
	switch collection {
	case "projects":
		c = w.cfg.Projects
	case "folders":
		c = w.cfg.Folders
	case "organizations":
		c = w.cfg.Organizations
	default:
		return nil, fmt.Errorf("resource %q is not projects/ID, folders/ID or organizations/ID", resource)
	}
	if c == nil {
		return nil, fmt.Errorf("no IAM client is configured for %s", collection)
	}
	return c, nil
}

// description joins the descriptions of windows, in order of start, each
// once, and cuts the result to MaxDescription bytes on a rune boundary.
func description(windows []Window) string {
	sorted := slices.Clone(windows)
	slices.SortStableFunc(sorted, func(a, b Window) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return strings.Compare(a.GrantID, b.GrantID)
	})
	var parts []string
	for _, w := range sorted {
		if d := strings.TrimSpace(w.Description); d != "" && !slices.Contains(parts, d) {
			parts = append(parts, d)
		}
	}
	s := strings.Join(parts, "; ")
	if len(s) <= MaxDescription {
		return s
	}
	const ellipsis = "..."
	cut := MaxDescription - len(ellipsis)
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
