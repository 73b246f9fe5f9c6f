package notify

import (
	"context"
	"fmt"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/mail"
)

// Mail kinds: what a mail tells its reader. The approvers who were asked
// get the outcome kinds of a request (approved, denied, expired,
// withdrawn) too, in their own thread, so no inbox keeps showing a request
// that is no longer open.
const (
	kindRequest   = "request"   // to each approver: please decide, with their link
	kindAsked     = "asked"     // to the requester: who was asked, until when
	kindApproved  = "approved"  // the request was approved
	kindDenied    = "denied"    // … denied
	kindExpired   = "expired"   // … nobody decided in time
	kindWithdrawn = "withdrawn" // … withdrawn by the requester
	kindActive    = "active"    // to the requester: access active until …
	kindFailed    = "failed"    // … activation failed
	kindEnded     = "ended"     // … access ended at its end time
	kindRevoked   = "revoked"   // … access revoked by an administrator
)

// planned is one mail to send: a kind for one recipient.
type planned struct {
	kind string
	to   string
	// approver is set for the mails to the people asked to approve.
	approver bool
	// asked lists, in the requester's request mail, who was asked.
	asked []string
}

// hasMail reports whether events of type t can cause mail.
func hasMail(t string) bool {
	switch t {
	case events.TypeRequested, events.TypeApproved, events.TypeDenied, events.TypeExpired,
		events.TypeActivated, events.TypeActivationFailed, events.TypeEnded, events.TypeRevoked,
		events.TypeWithdrawn:
		return true
	}
	return false
}

// planner decides the mails of one grant's entries, asking for its
// approvers at most once.
type planner struct {
	n         *Notifier
	g         *grant.Grant
	approvers []string
	asked     bool
}

// plan returns the mails timeline entry e causes. With an error it may
// still return mails that do not depend on what failed: they are sent,
// and the error makes the event come again for the rest.
func (p *planner) plan(ctx context.Context, e *grant.Entry) ([]planned, error) {
	g := p.g
	requester := func(kind string) []planned { return []planned{{kind: kind, to: g.Requester}} }
	switch e.EventType {
	case events.TypeRequested:
		// A self-approved request goes straight to activation: its
		// requester hears when the access is active, nobody else at all.
		if e.State != grant.ApprovalAwaited {
			return nil, nil
		}
		as, err := p.approverList(ctx)
		if err != nil {
			return nil, err
		}
		out := []planned{{kind: kindAsked, to: g.Requester, asked: as}}
		if reason := p.requestClosed(); reason != "" {
			// The link would lead to a request nobody can decide any more;
			// the outcome mail, which the approvers get too, says why.
			p.n.cfg.Logger.InfoContext(ctx, "approval request not mailed to approvers",
				"grant_id", g.ID,
				"reason", reason)
			return out, nil
		}
		for _, a := range as {
			out = append(out, planned{kind: kindRequest, to: a, approver: true})
		}
		return out, nil
	case events.TypeApproved:
		// An approval short of the quorum leaves the request open: the
		// requester hears when it is approved, not of every vote.
		if e.State == grant.ApprovalAwaited {
			return nil, nil
		}
		return p.withApprovers(ctx, kindApproved)
	case events.TypeDenied:
		return p.withApprovers(ctx, kindDenied)
	case events.TypeExpired:
		return p.withApprovers(ctx, kindExpired)
	case events.TypeWithdrawn:
		// Withdrawn while awaiting approval: the approvers' request is
		// moot. Withdrawn after approval: only the requester cares.
		if before := previous(g, e); before != nil && before.State == grant.ApprovalAwaited {
			return p.withApprovers(ctx, kindWithdrawn)
		}
		return requester(kindWithdrawn), nil
	case events.TypeActivated:
		return requester(kindActive), nil
	case events.TypeActivationFailed:
		return requester(kindFailed), nil
	case events.TypeEnded:
		return requester(kindEnded), nil
	case events.TypeRevoked:
		return requester(kindRevoked), nil
	}
	return nil, nil
}

// withApprovers is the requester's mail of kind and, for a grant that
// needed approval, the same news to each approver who was asked.
func (p *planner) withApprovers(ctx context.Context, kind string) ([]planned, error) {
	out := []planned{{kind: kind, to: p.g.Requester}}
	if !p.g.ApprovalRequired {
		return out, nil
	}
	as, err := p.approverList(ctx)
	if err != nil {
		// The requester's news does not wait for the directory.
		return out, err
	}
	for _, a := range as {
		out = append(out, planned{kind: kind, to: a, approver: true})
	}
	return out, nil
}

// requestClosed says why approvers should not be asked any more, or "".
func (p *planner) requestClosed() string {
	switch {
	case p.g.State != grant.ApprovalAwaited:
		return fmt.Sprintf("the grant is %s", p.g.State)
	case !p.g.ApprovalDeadline.IsZero() && !p.n.cfg.Clock.Now().Before(p.g.ApprovalDeadline):
		return "the approval window has closed"
	}
	return ""
}

// approverList is the Approvers function's answer, deduplicated, without
// addresses that are not addresses and, whatever the function says,
// without the requester: nobody is ever mailed a link to approve their
// own request.
func (p *planner) approverList(ctx context.Context) ([]string, error) {
	if p.asked {
		return p.approvers, nil
	}
	as, err := p.n.cfg.Approvers(ctx, p.g)
	if err != nil {
		// A directory lookup that failed may succeed on redelivery.
		return nil, fmt.Errorf("%w: failed to list the approvers: %w", mail.ErrTemporary, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, a := range as {
		switch {
		case !emailaddr.Valid(a):
			p.n.cfg.Logger.WarnContext(ctx, "approver address is not an email address; not notified",
				"grant_id", p.g.ID,
				"approver", a)
		case emailaddr.Equal(a, p.g.Requester):
			p.n.cfg.Logger.WarnContext(ctx, "requester listed among their own approvers; not notified as one",
				"grant_id", p.g.ID)
		case !seen[emailaddr.Key(a)]:
			seen[emailaddr.Key(a)] = true
			out = append(out, a)
		}
	}
	p.approvers, p.asked = out, true
	return out, nil
}

// previous is the timeline entry before e, or nil.
func previous(g *grant.Grant, e *grant.Entry) *grant.Entry {
	for i := range g.Timeline {
		if g.Timeline[i].EventID == e.EventID {
			if i == 0 {
				return nil
			}
			return &g.Timeline[i-1]
		}
	}
	return nil
}

// last is the latest entry of eventType before e, or nil.
func last(g *grant.Grant, e *grant.Entry, eventType string) *grant.Entry {
	var found *grant.Entry
	for i := range g.Timeline {
		if g.Timeline[i].EventID == e.EventID {
			break
		}
		if g.Timeline[i].EventType == eventType {
			found = &g.Timeline[i]
		}
	}
	return found
}
