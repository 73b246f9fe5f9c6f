package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
)

// RedriveAfter is how long a request may wait for its workflow execution
// before Sweep publishes its grant.requested again.
const RedriveAfter = time.Minute

// SweepGrace is how long past its due time a step may be late before Sweep
// does it itself: the workflow and the revocation task act at the due
// time, the condition expires by itself, and the sweep is the last lock.
const SweepGrace = 5 * time.Minute

// sweepLimit bounds each of the sweep's ledger queries; what is left is
// found by the next run.
const sweepLimit = 500

// Sweep is the janitor that runs on a schedule (Cloud Scheduler calls the
// sweep entry point on Google Cloud; the embedded pipeline runs it on a
// ticker). It re-does what a crash or a lost message left undone:
//   - publishes events left unpublished after a crash between the ledger
//     write and the publication;
//   - starts the lifecycle again for requests no workflow execution has
//     claimed (locally, Pub/Sub does not survive a restart);
//   - expires requests whose approval window is over, ends grants whose
//     time is over, finishes withdrawals and revocations, and removes the
//     bindings of failed activations — whatever is SweepGrace overdue;
//   - purges expired JIT bindings of anyone from the policies of the
//     resources the policy grants on and of recently ended grants, even
//     when no new grant writes there (they count against IAM's 1,500
//     principals per policy forever otherwise; docs/google-cloud.md §1).
//
// Every step is the same idempotent operation the functions do, so a sweep
// racing the workflow or a task changes nothing twice.
func (s *RevokeService) Sweep(ctx context.Context) error {
	var errs []error
	unpublished, err := s.ledger.List(ctx, grant.Query{Unpublished: true, Limit: sweepLimit})
	if err != nil {
		errs = append(errs, fmt.Errorf("failed to list grants with unpublished events: %w", err))
	}
	for _, g := range unpublished {
		if err := s.flush(ctx, g); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.redrive(ctx)...)
	errs = append(errs, s.purge(ctx)...)
	return errors.Join(errs...)
}

// redrive finds grants whose next step is overdue and does it.
func (s *RevokeService) redrive(ctx context.Context) []error {
	now := s.now()
	var errs []error
	gs, err := s.ledger.List(ctx, grant.Query{
		States: []grant.State{grant.ApprovalAwaited, grant.Activating, grant.Active, grant.Withdrawing, grant.Revoking, grant.ActivationFailed},
		Limit:  sweepLimit,
	})
	if err != nil {
		return []error{fmt.Errorf("failed to list grants in progress: %w", err)}
	}
	for _, g := range gs {
		var reason string
		switch {
		case (g.State == grant.ApprovalAwaited || g.State == grant.Activating) && g.Execution == "" &&
			now.Sub(g.CreateTime) >= RedriveAfter && len(g.Timeline) > 0:
			// No workflow claimed it: its grant.requested was lost.
			e, err := events.FromGrantEntry(g, g.Timeline[0])
			if err == nil {
				err = s.startLifecycle(ctx, e)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("failed to re-drive %s: %w", g.ID, err))
				continue
			}
			s.log.InfoContext(ctx, "re-drove a request no workflow claimed", "grant_id", g.ID)
			continue
		case g.State == grant.ApprovalAwaited && !g.ApprovalDeadline.IsZero() && now.Sub(g.ApprovalDeadline) >= SweepGrace:
			reason = ReasonExpired
		case (g.State == grant.Active || g.State == grant.Activating) && !g.EndTime.IsZero() && now.Sub(g.EndTime) >= SweepGrace:
			reason = ReasonEnd
		case (g.State == grant.Withdrawing || g.State == grant.Revoking) && now.Sub(g.UpdateTime) >= SweepGrace:
			reason = ReasonRevoke // the state decides the outcome
		case g.State == grant.ActivationFailed && g.MayHoldAccess():
			reason = ReasonRevoke
		default:
			continue
		}
		if _, err := s.revoke(ctx, g.ID, reason, "sweep"); err != nil {
			errs = append(errs, fmt.Errorf("sweep could not finish %s (%s): %w", g.ID, g.State, err))
			continue
		}
		s.log.InfoContext(ctx, "sweep finished an overdue step", "grant_id", g.ID, "state", g.State, "reason", reason)
	}
	return errs
}

// purge removes expired JIT bindings from the resources the policy grants
// on and those of grants that ended in the last day.
func (s *RevokeService) purge(ctx context.Context) []error {
	var resources []string
	var errs []error
	if pol, err := s.policy(ctx); err != nil {
		errs = append(errs, err)
	} else {
		for _, g := range pol.Groups() {
			for _, p := range g.Privileges {
				resources = append(resources, p.Resource)
			}
		}
	}
	now := s.now()
	ended, err := s.ledger.List(ctx, grant.Query{EndBefore: now, Limit: sweepLimit})
	if err != nil {
		errs = append(errs, fmt.Errorf("failed to list ended grants: %w", err))
	}
	for _, g := range ended {
		if now.Sub(g.EndTime) > 24*time.Hour {
			continue
		}
		for _, p := range g.Privileges {
			resources = append(resources, p.Resource)
		}
	}
	slices.Sort(resources)
	resources = slices.Compact(resources)
	if len(resources) == 0 {
		return errs
	}
	if _, err := s.iam.Purge(ctx, resources...); err != nil {
		errs = append(errs, fmt.Errorf("failed to purge expired bindings: %w", err))
	}
	return errs
}
