// Package notify decides who is told what about a grant, renders the mail
// (a plain-text and an HTML part from embedded templates) and sends it at
// most once per transition and recipient.
//
// Notify is called for every lifecycle event with the grant as read from
// the ledger. Events arrive at least once and in any order, so the mails
// are derived from the grant's timeline entries of the event's type, not
// from the event, and each (grant, timeline entry, recipient) is claimed
// in a Journal before it is sent: a redelivered event finds its mails
// claimed and sends nothing, and an event that arrives after later ones
// still finds its own entry in the timeline and sends its mail once.
//
// Every mail goes to one person (To only, never Cc): each approver's mail
// carries a link bound to that approver, and each person's mails about a
// grant thread under a root Message-ID of their own.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/mail"
)

// DefaultLease is how long a claim keeps others from sending the same mail
// when Config.Lease is zero: far longer than one submission takes, so a
// concurrent duplicate delivery never sends it too, and short enough that
// a mail whose sender died mid-way is sent by a redelivery that same hour.
const DefaultLease = 5 * time.Minute

// Journal records which mails have been sent. Keys are
// grantID/eventID/recipient.
type Journal interface {
	// Claim takes key for lease and reports whether it got it: true if
	// nobody has claimed the key, or a previous claim's lease expired
	// without Done; false if the key is done; an error (wrapping
	// ledger.ErrClaimBusy) if it is claimed under a live lease — the
	// delivery then fails for now and is redelivered, so a mail whose
	// sender died mid-way is sent once the lease ends instead of being
	// lost. lease must be positive and key non-empty.
	Claim(ctx context.Context, key string, lease time.Duration) (bool, error)
	// Done makes the key's claim permanent: it is never claimed again.
	Done(ctx context.Context, key string) error
	// Release gives up a claim that is not done, so the next Claim gets
	// the key at once instead of after the lease (a send that failed and
	// will be retried by the trigger's redelivery). Claims carry no
	// owner: a sender that outlived its lease could release a claim that
	// has passed to another, which is why leases are far longer than a
	// send.
	Release(ctx context.Context, key string) error
}

// Links mints the approval link an approver's mail carries: bound to that
// approver and valid until deadline.
type Links interface {
	Link(ctx context.Context, grantID, approver string, deadline time.Time) (string, error)
}

// Config holds the Notifier's dependencies; all but Lease are required.
type Config struct {
	Sender  mail.Sender
	Links   Links
	Journal Journal
	// Approvers returns the addresses of the people who may approve g
	// under the policy in force: groups expanded, the requester left out.
	// It is asked again for the outcome mails, so the people who were
	// asked learn the request was decided (their inbox would otherwise
	// show a request still open).
	Approvers func(ctx context.Context, g *grant.Grant) ([]string, error)
	// From is the sender address of every mail.
	From string
	// Domain is the right-hand side of the Message-IDs.
	Domain string
	// PageURL is the base URL of the pages; the requester's mails link
	// to PageURL/grants/ID.
	PageURL string
	Logger  *slog.Logger
	// Clock tells whether an approval window is still open.
	Clock clock.Clock
	// Lease is how long a claimed mail stays claimed without Done;
	// zero means DefaultLease.
	Lease time.Duration
}

// Validate reports every missing or malformed dependency.
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name    string
		missing bool
	}{
		{"Sender", c.Sender == nil}, {"Links", c.Links == nil}, {"Journal", c.Journal == nil},
		{"Approvers", c.Approvers == nil}, {"Logger", c.Logger == nil}, {"Clock", c.Clock == nil},
	} {
		if d.missing {
			errs = append(errs, fmt.Errorf("%s is required", d.name))
		}
	}
	if !emailaddr.Valid(c.From) {
		errs = append(errs, fmt.Errorf("From %q is not an email address", c.From))
	}
	if err := emailaddr.CheckDomain(c.Domain); err != nil {
		errs = append(errs, fmt.Errorf("Domain %q: %w", c.Domain, err))
	}
	if u, err := url.Parse(c.PageURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("PageURL %q is not an absolute http(s) URL", c.PageURL))
	}
	if c.Lease < 0 {
		errs = append(errs, fmt.Errorf("Lease %s is negative", c.Lease))
	}
	return errors.Join(errs...)
}

// Notifier sends the mails of grant transitions. It is safe for
// concurrent use.
type Notifier struct {
	cfg Config
}

// New returns a Notifier, or the problems of cfg.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid notifier config: %w", err)
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	return &Notifier{cfg: cfg}, nil
}

// Notify sends the mails of g's timeline entries of eventType that have
// not been sent yet. Event types without mail (withdrawing, revoking,
// revocation verified, the workflow's commands) do nothing. A failure
// that may pass returns an error wrapping mail.ErrTemporary, so the
// trigger redelivers the event; the mails already sent are not sent
// again. A recipient the server refuses for good is logged and not
// retried.
func (n *Notifier) Notify(ctx context.Context, eventType string, g *grant.Grant) error {
	if g == nil {
		return errors.New("failed to notify: no grant")
	}
	var (
		found bool
		errs  []error
		p     = &planner{n: n, g: g}
	)
	for i := range g.Timeline {
		e := &g.Timeline[i]
		if e.EventType != eventType {
			continue
		}
		found = true
		mails, err := p.plan(ctx, e)
		if err != nil {
			errs = append(errs, err)
		}
		for _, m := range mails {
			if err := n.deliver(ctx, g, e, m); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !found && hasMail(eventType) {
		// The ledger is written before the event is published, so this is
		// an event of another grant's history or a bug; retrying will not
		// make the entry appear.
		n.cfg.Logger.WarnContext(ctx, "no timeline entry for the event; nothing sent",
			"grant_id", g.ID,
			"event_type", eventType)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to notify about %s of %s: %w", eventType, g.ID, err)
	}
	return nil
}

// deliver claims, renders and sends one mail.
func (n *Notifier) deliver(ctx context.Context, g *grant.Grant, e *grant.Entry, m planned) error {
	key := g.ID + "/" + e.EventID + "/" + emailaddr.Key(m.to)
	ok, err := n.cfg.Journal.Claim(ctx, key, n.cfg.Lease)
	if err != nil {
		return fmt.Errorf("%w: failed to claim %q: %w", mail.ErrTemporary, key, err)
	}
	if !ok {
		return nil // sent already
	}
	msg, err := n.compose(ctx, g, e, m)
	if err == nil {
		err = n.cfg.Sender.Send(ctx, msg)
	}
	log := n.cfg.Logger.With("grant_id", g.ID, "event_id", e.EventID, "mail", m.kind)
	switch {
	case err == nil:
		if err := n.cfg.Journal.Done(ctx, key); err != nil {
			// The mail is out; a redelivery after the lease may send it
			// again, which beats reporting a failure that redelivers now.
			log.ErrorContext(ctx, "mail sent but not recorded; a redelivery after the lease may repeat it",
				"key", key,
				"error", err)
		}
		return nil
	case errors.Is(err, mail.ErrPermanent) || errors.Is(err, errPermanent):
		log.ErrorContext(ctx, "mail refused for good; not retried",
			"key", key,
			"error", err)
		if err := n.cfg.Journal.Done(ctx, key); err != nil {
			log.WarnContext(ctx, "failed to record a refused mail; a redelivery will try it again",
				"key", key,
				"error", err)
		}
		return nil
	default:
		// Unclassified failures count as temporary: a mail lost is worse
		// than a redelivery that fails again.
		if rerr := n.cfg.Journal.Release(ctx, key); rerr != nil {
			err = errors.Join(err, fmt.Errorf("failed to release %q (it is retried after the lease): %w", key, rerr))
		}
		if !errors.Is(err, mail.ErrTemporary) {
			err = fmt.Errorf("%w: %w", mail.ErrTemporary, err)
		}
		return fmt.Errorf("failed to send %s mail of %s: %w", m.kind, e.EventID, err)
	}
}

// errPermanent marks a mail that cannot be composed for its recipient
// (an address the mail package refuses): retrying would not change it.
var errPermanent = errors.New("mail cannot be composed")
