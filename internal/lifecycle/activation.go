package lifecycle

import (
	"context"
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

	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/iamgrant"
)

// MaxTaskHorizon is how far ahead a revocation task is scheduled: Cloud
// Tasks refuses more than 30 days (gcp-facts §3), so longer grants get a
// chain of tasks, each re-scheduling the next.
const MaxTaskHorizon = 29 * 24 * time.Hour

// OnActivationRequested is the grant function: it writes the time-bound
// binding (DESIGN §3), schedules the named revocation task and marks the
// grant ACTIVE, then resumes the workflow with the end time. Redelivery of
// the same command only resumes the workflow again.
func (s *Service) OnActivationRequested(ctx context.Context, d *events.Data) error {
	g, err := s.cfg.Ledger.Get(ctx, d.GrantID)
	if errors.Is(err, grant.ErrNotFound) {
		s.log.ErrorContext(ctx, "activation requested for an unknown grant", "grant_id", d.GrantID)
		return nil
	}
	if err != nil {
		return err
	}
	// Fix the window first: while it is being written, a revocation of
	// another grant of the same binding counts this one as wanted.
	now, duplicate := s.now(), false
	g, err = s.cfg.Ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
		owner := cur.Execution
		if duplicate = !claim(cur, d.CallbackURL); duplicate {
			return grant.ErrNoChange
		}
		changed := owner != cur.Execution
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
		return s.callback(ctx, d.CallbackURL, map[string]any{"state": StateDuplicate})
	}
	if g.State == grant.Activating {
		if err := s.converge(ctx, g); err != nil {
			if retryable(err) {
				return err // redelivered
			}
			return s.failActivation(ctx, g, d, err)
		}
		if err := s.scheduleRevocation(ctx, g, g.EndTime); err != nil {
			return err
		}
		g, err = s.cfg.Ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
			if cur.State != grant.Activating {
				return grant.ErrNoChange
			}
			_, err := cur.Transition(grant.Active, events.Activated, s.now(), "grant-function",
				fmt.Sprintf("binding written until %s", cur.EndTime.Format(time.RFC3339)))
			return err
		})
		if err != nil {
			return err
		}
		s.publishAfter(ctx, g)
		if g.State == grant.Withdrawing {
			// Withdrawn while the binding was being written: take it away
			// again now (the grant function may change IAM, and Revoke is
			// idempotent with the revoke function's own run).
			if g, err = s.Revoke(ctx, g.ID, ReasonWithdraw, "grant-function"); err != nil {
				return err
			}
			return s.callback(ctx, d.CallbackURL, map[string]any{"state": g.State})
		}
	}
	body := map[string]any{"state": g.State}
	if g.State == grant.Active {
		body["endTime"] = g.EndTime.Unix()
	}
	return s.callback(ctx, d.CallbackURL, body)
}

func (s *Service) failActivation(ctx context.Context, g *grant.Grant, d *events.Data, cause error) error {
	g, err := s.cfg.Ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
		if cur.State != grant.Activating {
			return grant.ErrNoChange
		}
		_, err := cur.Transition(grant.ActivationFailed, events.ActivationFailed, s.now(), "grant-function", cause.Error())
		return err
	})
	if err != nil {
		return err
	}
	s.log.ErrorContext(ctx, "activation failed", "grant_id", g.ID, "error", cause)
	s.publishAfter(ctx, g)
	return s.callback(ctx, d.CallbackURL, map[string]any{"state": g.State})
}

// retryable tells a transient failure (redeliver) from a permanent one.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound:
		return false
	}
	return true
}

// scheduleRevocation creates the named revocation task at end, or at the
// task horizon for longer grants. Task names derive from the grant, so a
// redelivery cannot create a second task (ALREADY_EXISTS).
func (s *Service) scheduleRevocation(ctx context.Context, g *grant.Grant, end time.Time) error {
	if s.cfg.Tasks == nil {
		return nil
	}
	at, hop := end, 0
	if horizon := s.now().Add(MaxTaskHorizon); at.After(horizon) {
		at = horizon
		hop = int(horizon.Sub(g.StartTime) / MaxTaskHorizon)
	}
	name := fmt.Sprintf("%s/tasks/revoke-%s", s.cfg.RevokeQueue, g.ID)
	if hop > 0 {
		name = fmt.Sprintf("%s-%d", name, hop)
	}
	_, err := s.cfg.Tasks.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{
		Parent: s.cfg.RevokeQueue,
		Task: &cloudtaskspb.Task{
			Name:         name,
			ScheduleTime: timestamppb.New(at),
			MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
				Url:        s.cfg.RevokeURL,
				HttpMethod: cloudtaskspb.HttpMethod_POST,
				Headers:    map[string]string{"Content-Type": "application/json"},
				Body:       fmt.Appendf(nil, `{"grantId":%q}`, g.ID),
				AuthorizationHeader: &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{
					ServiceAccountEmail: s.cfg.RevokeServiceAccount,
					Audience:            s.cfg.RevokeURL,
				}},
			}},
		},
	})
	if status.Code(err) == codes.AlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to schedule the revocation of %s: %w", g.ID, err)
	}
	return nil
}

// bindingKeys are the IAM bindings a grant confers, one per privilege.
func bindingKeys(g *grant.Grant) []iamgrant.Key {
	keys := make([]iamgrant.Key, 0, len(g.Privileges))
	for _, p := range g.Privileges {
		keys = append(keys, iamgrant.Key{Resource: p.Resource, Role: p.Role, Condition: p.Condition, Member: member(g.Requester)})
	}
	return keys
}

// wanted lists, for each key, the windows of the requester's grants that
// should be in force: ACTIVATING ones whose window is fixed, and ACTIVE
// ones, that have not ended yet. The binding spans their union, so
// overlapping grants never cut each other short (DESIGN §3).
func (s *Service) wanted(ctx context.Context, requester string, keys []iamgrant.Key) ([]iamgrant.Change, error) {
	gs, err := s.cfg.Ledger.List(ctx, grant.Query{Requester: strings.ToLower(requester), States: []grant.State{grant.Activating, grant.Active}})
	if err != nil {
		return nil, fmt.Errorf("failed to list the grants of %s: %w", requester, err)
	}
	now := s.now()
	changes := make([]iamgrant.Change, 0, len(keys))
	for _, k := range keys {
		c := iamgrant.Change{Key: k}
		for _, g := range gs {
			if g.StartTime.IsZero() || !g.EndTime.After(now) {
				continue
			}
			if !slices.Contains(g.Privileges, grant.Privilege{Resource: k.Resource, Role: k.Role, Condition: k.Condition}) {
				continue
			}
			c.Windows = append(c.Windows, iamgrant.Window{
				Start: g.StartTime, End: g.EndTime, GrantID: g.ID,
				Description: iamcond.Description(approverNames(g), g.Justification),
			})
		}
		slices.SortFunc(c.Windows, func(a, b iamgrant.Window) int { return strings.Compare(a.GrantID, b.GrantID) })
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
func (s *Service) converge(ctx context.Context, g *grant.Grant) error {
	keys := bindingKeys(g)
	unlock := s.lockKeys(keys)
	defer unlock()
	var last []iamgrant.Change
	for range 5 {
		want, err := s.wanted(ctx, g.Requester, keys)
		if err != nil {
			return err
		}
		if last != nil && sameChanges(last, want) {
			return nil
		}
		if _, err := s.cfg.IAM.Apply(ctx, want...); err != nil {
			return fmt.Errorf("failed to write the bindings of %s: %w", g.ID, err)
		}
		last = want
	}
	return nil
}

func sameChanges(a, b []iamgrant.Change) bool {
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

func (s *Service) lockKeys(keys []iamgrant.Key) func() {
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
