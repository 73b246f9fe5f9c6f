package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iambinding"
	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/policy"
)

// MaxTaskHorizon is how far ahead a revocation task is scheduled: Cloud
// Tasks refuses more than 30 days (docs/google-cloud.md §3), so longer grants get a
// chain of tasks, each scheduling the next.
const MaxTaskHorizon = 29 * 24 * time.Hour

// GrantConfig is what the grant function's service needs: with the revoke
// function's, the only one that writes IAM policies and schedules
// revocation tasks.
type GrantConfig struct {
	Common
	Callers
	Resume
	// Executions confirms that a command's callback belongs to the
	// execution running the grant.
	Executions Executions
	Privileged
}

// Validate reports every missing dependency.
func (c GrantConfig) Validate() error {
	return errors.Join(slices.Concat(c.Common.problems(), c.Callers.problems(), c.Resume.problems(),
		required(need{"Executions", c.Executions != nil}), c.Privileged.problems())...)
}

// GrantService is the grant function: it activates grants.
type GrantService struct{ *privileged }

// NewGrant builds the grant service; a missing dependency is an error
// naming it.
func NewGrant(cfg GrantConfig) (*GrantService, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lifecycle: grant service: %w", err)
	}
	return &GrantService{newPrivileged(newCore(cfg.Common, cfg.Callers, cfg.Resume, cfg.Executions), cfg.Privileged)}, nil
}

// OnActivationRequested is the grant function: it writes the time-bound
// binding (docs/architecture.md §3), schedules the named revocation task and marks the
// grant ACTIVE, then resumes the workflow with the end time. Redelivery of
// the same command only resumes the workflow again.
//
// The command came over Pub/Sub, so nothing in it is trusted but the
// grant ID: its callback URLs must be those of the execution running the
// grant, and the policy in force must still let the requester have the
// entitlement's privileges as they were requested. The revocation task is
// scheduled before any binding is written, so no binding ever exists
// without its backstop; a failure after a binding may have been written
// removes it again and verifies the removal.
func (s *GrantService) OnActivationRequested(ctx context.Context, d *events.Data) error {
	g, err := s.ledger.Get(ctx, d.GrantID)
	if errors.Is(err, grant.ErrNotFound) {
		s.log.ErrorContext(ctx, "activation requested for an unknown grant", "grant_id", d.GrantID)
		return nil
	}
	if err != nil {
		return err
	}
	exec, err := s.commandExecution(ctx, g, d.CallbackURL, d.EndCallbackURL)
	if errors.Is(err, errNotOurExecution) {
		s.refuseCommand(ctx, d, err)
		return nil
	}
	if err != nil {
		return err
	}
	// Fix the window first: while it is being written, a revocation of
	// another grant of the same binding counts this one as wanted.
	now, duplicate := s.now(), false
	g, err = s.ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
		changed := false
		if cur.Execution == "" {
			cur.Execution, changed = exec, true
		}
		if duplicate = cur.Execution != exec; duplicate {
			return grant.ErrNoChange
		}
		if cur.State == grant.Activating && cur.StartTime.IsZero() {
			cur.StartTime = now.Truncate(time.Second)
			cur.EndTime = cur.StartTime.Add(cur.RequestedDuration)
			changed = true
		}
		if cur.EndCallback != d.EndCallbackURL && d.EndCallbackURL != "" {
			cur.EndCallback = d.EndCallbackURL
			changed = true
		}
		if !changed {
			return grant.ErrNoChange
		}
		return nil
	})
	if err != nil {
		return err
	}
	if duplicate {
		return s.callback(ctx, exec, d.CallbackURL, map[string]any{"state": StateDuplicate})
	}
	switch {
	case g.State == grant.Activating:
		if g, err = s.activate(ctx, g); err != nil {
			return err // redelivered
		}
	case g.MayHoldAccess() && g.State.Terminal():
		// A failed activation whose removal did not go through: again.
		if err := s.removeAndVerify(ctx, g); err != nil {
			return err
		}
	}
	body := map[string]any{"state": g.State}
	if g.State == grant.Active {
		body["endTime"] = g.EndTime.Unix()
	}
	return s.callback(ctx, g.Execution, d.CallbackURL, body)
}

// activate re-checks the policy, schedules the revocation, writes the
// bindings and marks the grant ACTIVE. A permanent failure ends it
// ACTIVATION_FAILED with its bindings removed; a transient one is
// returned for redelivery.
func (s *GrantService) activate(ctx context.Context, g *grant.Grant) (*grant.Grant, error) {
	if refusal, err := s.stillAllowed(ctx, g); err != nil {
		return nil, err
	} else if refusal != "" {
		return s.failActivation(ctx, g, errors.New(refusal))
	}
	if err := s.scheduleRevocation(ctx, g, g.StartTime); err != nil {
		return nil, err
	}
	if err := s.converge(ctx, g); err != nil {
		if retryable(err) {
			return nil, err
		}
		return s.failActivation(ctx, g, err)
	}
	g, err := s.ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
		if cur.State != grant.Activating {
			return grant.ErrNoChange
		}
		_, err := cur.Transition(grant.Active, events.TypeActivated, s.now(), "grant-function",
			fmt.Sprintf("binding written until %s", cur.EndTime.Format(time.RFC3339)))
		return err
	})
	if err != nil {
		return nil, err
	}
	s.publishAfter(ctx, g)
	if g.State == grant.Withdrawing || g.State == grant.Revoking {
		// Withdrawn or revoked while the binding was being written: take
		// it away again now (the grant function may change IAM, and Revoke
		// is idempotent with the revoke function's own run).
		return s.revoke(ctx, g.ID, ReasonRevoke, "grant-function")
	}
	return g, nil
}

// stillAllowed re-checks, against the policy in force, that the requester
// may still have what the grant was requested for: JOIN, the join
// constraints, the duration, and the same privileges. It returns the
// reason of a refusal, or "".
func (s *GrantService) stillAllowed(ctx context.Context, g *grant.Grant) (string, error) {
	pol, err := s.decisionPolicy(ctx, g.Entitlement)
	if err != nil {
		return "", err
	}
	requester, err := s.requesterSubject(ctx, g)
	if err != nil {
		return "", err
	}
	d, err := pol.Join(policy.Request{Subject: requester, Entitlement: g.Entitlement, Duration: g.RequestedDuration, Inputs: g.Inputs})
	var denied *policy.Denied
	switch {
	case errors.As(err, &denied):
		return "the policy in force refuses it now: " + strings.Join(denied.Reasons, "; "), nil
	case errors.Is(err, policy.ErrUnknownEntitlement):
		return "the entitlement is no longer in the policy", nil
	case err != nil:
		return "", err
	}
	if !samePrivileges(privileges(d.Group), g.Privileges) {
		return "the entitlement's privileges changed since the request; request it again", nil
	}
	return "", nil
}

// samePrivileges compares two sets of privileges, in any order.
func samePrivileges(a, b []grant.Privilege) bool {
	key := func(p grant.Privilege) string { return p.Resource + "\x00" + p.Role + "\x00" + p.Condition }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i, p := range a {
		ka[i] = key(p)
	}
	for i, p := range b {
		kb[i] = key(p)
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(slices.Compact(ka), slices.Compact(kb))
}

// failActivation ends an activation that cannot succeed: ACTIVATION_FAILED,
// then whatever binding was written is removed and the removal verified.
// If the removal fails the error is returned, so the command is delivered
// again; the revocation task, scheduled before the write, and the sweep
// retry it too.
func (s *GrantService) failActivation(ctx context.Context, g *grant.Grant, cause error) (*grant.Grant, error) {
	g, err := s.ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
		if cur.State != grant.Activating {
			return grant.ErrNoChange
		}
		_, err := cur.Transition(grant.ActivationFailed, events.TypeActivationFailed, s.now(), "grant-function", cause.Error())
		cur.Unreachable = iambinding.Unreadable(cause)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.log.ErrorContext(ctx, "activation failed", "grant_id", g.ID, "error", cause)
	s.publishAfter(ctx, g)
	if g.MayHoldAccess() && g.State == grant.ActivationFailed {
		if err := s.removeAndVerify(ctx, g); err != nil {
			return nil, fmt.Errorf("activation of %s failed and its removal is not verified yet: %w", g.ID, err)
		}
		return s.ledger.Get(ctx, g.ID)
	}
	return g, nil
}

// retryable tells a transient failure (redeliver) from a permanent one.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound:
		return false
	}
	return true
}

// The revocation tasks of a grant form a chain: Cloud Tasks refuses a
// schedule more than 30 days ahead (docs/google-cloud.md §3), so the first task is
// due at min(end, start + MaxTaskHorizon) and each task that finds the
// grant still running schedules the next one a horizon later. Task names
// are derived from the grant and the due time: a redelivered command or
// task re-creates the same name (ALREADY_EXISTS: it exists), and the next
// link always has a name of its own — never the name of the task being
// delivered, which Cloud Tasks keeps reserved for up to a day after it ran.

// nextTaskTime is when the link after one due at prev is due: min(end,
// prev + horizon). The first link follows prev = start.
func nextTaskTime(g *grant.Grant, prev time.Time) time.Time {
	next := prev.Add(MaxTaskHorizon)
	if g.EndTime.Before(next) {
		next = g.EndTime
	}
	return next.UTC().Truncate(time.Second)
}

// taskName is the name of the grant's revocation task due at t.
func (s *privileged) taskName(g *grant.Grant, t time.Time) string {
	return fmt.Sprintf("%s/tasks/revoke-%s-%d", s.queue, g.ID, t.Unix())
}

// RevocationTask is the body of a revocation task.
type RevocationTask struct {
	GrantID string `json:"grantId"`
	// ScheduleTime is when the task is due, which fixes the next link.
	ScheduleTime time.Time `json:"scheduleTime,omitzero"`
}

// scheduleRevocation creates the revocation task that follows the link
// due at prev (the grant's start for the first one).
func (s *privileged) scheduleRevocation(ctx context.Context, g *grant.Grant, prev time.Time) error {
	at := nextTaskTime(g, prev)
	body, err := json.Marshal(RevocationTask{GrantID: g.ID, ScheduleTime: at})
	if err != nil {
		return err
	}
	_, err = s.tasks.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{
		Parent: s.queue,
		Task: &cloudtaskspb.Task{
			Name:         s.taskName(g, at),
			ScheduleTime: timestamppb.New(at),
			MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
				Url:        s.url,
				HttpMethod: cloudtaskspb.HttpMethod_POST,
				Headers:    map[string]string{"Content-Type": "application/json"},
				Body:       body,
				AuthorizationHeader: &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{
					ServiceAccountEmail: s.sa,
					Audience:            s.url,
				}},
			}},
		},
	})
	if status.Code(err) == codes.AlreadyExists {
		return nil // this link was created before: a redelivery
	}
	if err != nil {
		return fmt.Errorf("failed to schedule the revocation of %s at %s: %w", g.ID, at.Format(time.RFC3339), err)
	}
	return nil
}

// bindingKeys are the IAM bindings a grant confers, one per privilege.
func bindingKeys(g *grant.Grant) []iambinding.Key {
	keys := make([]iambinding.Key, 0, len(g.Privileges))
	for _, p := range g.Privileges {
		if slices.Contains(g.Unreachable, p.Resource) {
			continue // nothing was written there (Grant.Unreachable)
		}
		keys = append(keys, iambinding.Key{Resource: p.Resource, Role: p.Role, Condition: p.Condition, Member: member(g.Requester)})
	}
	return keys
}

// wanted lists, for each key, the windows of the requester's grants that
// should be in force: ACTIVATING ones whose window is fixed, and ACTIVE
// ones, that have not ended yet. The binding spans their union, so
// overlapping grants never cut each other short (docs/architecture.md §3).
func (s *privileged) wanted(ctx context.Context, requester string, keys []iambinding.Key) ([]iambinding.Change, error) {
	gs, err := s.ledger.List(ctx, grant.Query{Requester: emailaddr.Key(requester), States: []grant.State{grant.Activating, grant.Active}})
	if err != nil {
		return nil, fmt.Errorf("failed to list the grants of %s: %w", requester, err)
	}
	now := s.now()
	changes := make([]iambinding.Change, 0, len(keys))
	for _, k := range keys {
		c := iambinding.Change{Key: k}
		for _, g := range gs {
			if g.StartTime.IsZero() || !g.EndTime.After(now) {
				continue
			}
			if !slices.Contains(g.Privileges, grant.Privilege{Resource: k.Resource, Role: k.Role, Condition: k.Condition}) {
				continue
			}
			c.Windows = append(c.Windows, iambinding.Window{
				Start: g.StartTime, End: g.EndTime, GrantID: g.ID,
				Description: iamcond.Description(approverNames(g), g.Justification),
			})
		}
		slices.SortFunc(c.Windows, func(a, b iambinding.Window) int { return strings.Compare(a.GrantID, b.GrantID) })
		changes = append(changes, c)
	}
	return changes, nil
}

func approverNames(g *grant.Grant) []string {
	var out []string
	for _, d := range g.Approvals() {
		out = append(out, d.Approver)
	}
	return out
}

// converge makes the grant's bindings match the ledger: write what is
// wanted, then read the ledger again and repeat if it changed meanwhile, so
// that concurrent activations and revocations of the same binding settle on
// the ledger's final state whoever writes last.
func (s *privileged) converge(ctx context.Context, g *grant.Grant) error {
	keys := bindingKeys(g)
	unlock := s.lockKeys(keys)
	defer unlock()
	var last []iambinding.Change
	for range 5 {
		want, err := s.wanted(ctx, g.Requester, keys)
		if err != nil {
			return err
		}
		if last != nil && sameChanges(last, want) {
			return nil
		}
		if _, err := s.iam.Apply(ctx, want...); err != nil {
			return fmt.Errorf("failed to write the bindings of %s: %w", g.ID, err)
		}
		last = want
	}
	return nil
}

func sameChanges(a, b []iambinding.Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || len(a[i].Windows) != len(b[i].Windows) {
			return false
		}
		for j := range a[i].Windows {
			wa, wb := a[i].Windows[j], b[i].Windows[j]
			if wa.GrantID != wb.GrantID || !wa.Start.Equal(wb.Start) || !wa.End.Equal(wb.End) {
				return false
			}
		}
	}
	return true
}

func (s *privileged) lockKeys(keys []iambinding.Key) func() {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = fmt.Sprintf("%s|%s|%s|%s", k.Member, k.Resource, k.Role, k.Condition)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var held []*sync.Mutex
	for _, n := range names {
		v, _ := s.keyLocks.LoadOrStore(n, &sync.Mutex{})
		mu := v.(*sync.Mutex)
		mu.Lock()
		held = append(held, mu)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Unlock()
		}
	}
}
