// Package grant is the domain of the pipeline: a grant (a request for an
// entitlement and, once approved, the access itself), its lifecycle in
// Privileged Access Manager's state names, and the timeline of its
// transitions. Every transition is one timeline entry, one ledger write and
// one CloudEvent: the entry carries the event's ID and whether it has been
// published, so the ledger doubles as the outbox (an event whose publication
// was interrupted is published again, with the same ID, by whoever next
// touches the grant or by the sweep).
package grant

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/lazyregexp"
)

// State is a grant's lifecycle state (docs/architecture.md §2, PAM's names).
type State string

const (
	ApprovalAwaited  State = "APPROVAL_AWAITED"
	Scheduled        State = "SCHEDULED"
	Activating       State = "ACTIVATING"
	Active           State = "ACTIVE"
	ActivationFailed State = "ACTIVATION_FAILED"
	Denied           State = "DENIED"
	Expired          State = "EXPIRED"
	Revoking         State = "REVOKING"
	Revoked          State = "REVOKED"
	Ended            State = "ENDED"
	Withdrawing      State = "WITHDRAWING"
	Withdrawn        State = "WITHDRAWN"
)

// transitions lists the legal moves. Revoking, Withdrawing and Ended are
// reached from Active; Withdrawn also directly from a request still waiting
// for approval (nothing to remove). Every state that can hold a binding can
// be withdrawn and revoked: ACTIVATING (a binding may be half written) and
// ACTIVATION_FAILED while its removal is unverified (the lifecycle checks
// that; the ledger cannot).
var transitions = map[State][]State{
	"":               {ApprovalAwaited, Activating, Scheduled},
	ApprovalAwaited:  {Activating, Denied, Expired, Withdrawn},
	Scheduled:        {Activating, Withdrawn},
	Activating:       {Active, ActivationFailed, Withdrawing, Revoking},
	Active:           {Ended, Revoking, Withdrawing},
	Revoking:         {Revoked},
	Withdrawing:      {Withdrawn},
	ActivationFailed: {Withdrawing, Revoking},
	Denied:           {},
	Expired:          {},
	Revoked:          {},
	Ended:            {},
	Withdrawn:        {},
}

// AllStates lists every state.
var AllStates = []State{ApprovalAwaited, Scheduled, Activating, Active, ActivationFailed, Denied, Expired, Revoking, Revoked, Ended, Withdrawing, Withdrawn}

// Terminal reports whether s is a final state, as in Privileged Access
// Manager. ACTIVATION_FAILED is final too: it is left only when someone
// withdraws or revokes a grant whose removal was never verified.
func (s State) Terminal() bool {
	switch s {
	case ActivationFailed, Denied, Expired, Revoked, Ended, Withdrawn:
		return true
	}
	return false
}

// HoldsSlot reports whether a grant in state s counts against its
// entitlement's concurrency limit: from the moment it is cleared to
// activate until its access has been removed.
func (s State) HoldsSlot() bool {
	switch s {
	case Activating, Active, Withdrawing, Revoking:
		return true
	}
	return false
}

// CanMove reports whether from → to is a legal transition.
func CanMove(from, to State) bool { return slices.Contains(transitions[from], to) }

// ErrIllegalTransition is wrapped by Transition's errors.
var ErrIllegalTransition = errors.New("illegal state transition")

// Privilege is one IAM role binding the grant confers: what the grant
// function writes and the revoke function removes.
type Privilege struct {
	Resource  string `json:"resource"`            // projects/ID, folders/ID, organizations/ID
	Role      string `json:"role"`                // roles/…
	Condition string `json:"condition,omitempty"` // resource condition AND-ed into the time window
}

// Decision is one approver's answer.
type Decision struct {
	Approver string    `json:"approver"`
	Approved bool      `json:"approved"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// Entry is one timeline entry: a transition, or a notable event within a
// state (an approval short of quorum, a verified revocation).
type Entry struct {
	Time      time.Time `json:"time"`
	State     State     `json:"state"`
	EventType string    `json:"eventType"`
	EventID   string    `json:"eventId"`
	Actor     string    `json:"actor,omitempty"`
	Message   string    `json:"message,omitempty"`
	// Published is set once the event is on the events topic.
	Published bool `json:"published"`
}

// Grant is a request for an entitlement and the access it becomes.
type Grant struct {
	ID            string         `json:"id"`
	Entitlement   string         `json:"entitlement"`
	Requester     string         `json:"requester"`
	Justification string         `json:"justification"`
	Inputs        map[string]any `json:"inputs,omitempty"`
	// RequestedDuration is how long the access lasts once active.
	RequestedDuration time.Duration `json:"requestedDuration"`
	Privileges        []Privilege   `json:"privileges"`

	State State `json:"state"`
	// ApprovalRequired, RequiredApprovals and ApprovalDeadline come from the
	// policy at request time; Approvers lists the principals notified.
	ApprovalRequired  bool      `json:"approvalRequired"`
	RequiredApprovals int       `json:"requiredApprovals,omitempty"`
	ApprovalDeadline  time.Time `json:"approvalDeadline,omitzero"`
	Approvers         []string  `json:"approvers,omitempty"`
	// Reviewers are the peers the requester chose for a peer-approved
	// role of JIT Access's eligible bindings (multi-party approval, by
	// address): when set, only they may decide on the request and only
	// they are asked.
	Reviewers []string   `json:"reviewers,omitempty"`
	Decisions []Decision `json:"decisions,omitempty"`

	CreateTime time.Time `json:"createTime"`
	UpdateTime time.Time `json:"updateTime"`
	StartTime  time.Time `json:"startTime,omitzero"`
	EndTime    time.Time `json:"endTime,omitzero"`

	// Execution is the lifecycle workflow execution; ApprovalCallback and
	// EndCallback are its callback URLs (resume on a decision, end early).
	Execution        string `json:"execution,omitempty"`
	ApprovalCallback string `json:"approvalCallback,omitempty"`
	EndCallback      string `json:"endCallback,omitempty"`
	// RevocationVerified is set when the revoke function has read the
	// policy back and found no binding that outlives the grant.
	RevocationVerified bool `json:"revocationVerified,omitempty"`

	// RequesterHostedDomain is the requester's hosted domain as verified
	// when they asked (IAP's hd claim, or the directory): whether they are
	// an internal user is decided from it, never from the address alone.
	// Empty for consumer accounts and where nothing vouched for one.
	RequesterHostedDomain string `json:"requesterHostedDomain,omitempty"`
	// RequestKey identifies the request that created the grant when it
	// came from another system: "envelope:" + the signed envelope's issuer
	// and ID. Create records it as an idempotency key (the key space of
	// Ledger.Once) in the same transaction, so a request is consumed
	// exactly when its grant is stored.
	RequestKey string `json:"requestKey,omitempty"`
	// ConcurrencyLimit is the policy's concurrency limit for the
	// entitlement (constraint concurrency, max) in force when the grant
	// was last moved into a state that HoldsSlot; 0 means no limit. The
	// ledger enforces it atomically with that write (ErrLimit).
	ConcurrencyLimit int `json:"concurrencyLimit,omitempty"`
	// Unreachable are resources of the grant's privileges whose IAM policy
	// its failed activation could not even read (NOT_FOUND or
	// PERMISSION_DENIED): no binding of the grant was written there, so
	// removing its access leaves them out (and can be verified).
	Unreachable []string `json:"unreachable,omitempty"`

	Timeline []Entry `json:"timeline"`
	// Version increases with every ledger write (optimistic concurrency).
	Version int64 `json:"version"`
}

var idRE = lazyregexp.New(`^g-[a-z2-7]{20}$`)

// NewID returns a random grant ID, usable in Cloud Tasks task names and
// URLs: "g-" and 20 base32 characters (100 bits).
func NewID() string {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the platform is broken
	}
	return "g-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
}

// ValidID reports whether s has the shape of a grant ID.
func ValidID(s string) bool { return idRE.MatchString(s) }

// Transition moves the grant to a new state at time t, appending the
// timeline entry (not yet published) whose event announces it. Moving to
// the state the grant is already in is an error wrapping
// ErrIllegalTransition too: callers check the state first to stay
// idempotent.
func (g *Grant) Transition(to State, eventType string, t time.Time, actor, message string) (*Entry, error) {
	if !CanMove(g.State, to) {
		return nil, fmt.Errorf("%w: %s → %s for %s", ErrIllegalTransition, g.State, to, g.ID)
	}
	g.State = to
	return g.Record(eventType, t, actor, message), nil
}

// Record appends a timeline entry in the current state, e.g. one approval
// of several required.
func (g *Grant) Record(eventType string, t time.Time, actor, message string) *Entry {
	g.Timeline = append(g.Timeline, Entry{
		Time: t, State: g.State, EventType: eventType,
		EventID: fmt.Sprintf("%s-%d", g.ID, len(g.Timeline)+1),
		Actor:   actor, Message: message,
	})
	g.UpdateTime = t
	return &g.Timeline[len(g.Timeline)-1]
}

// Unpublished lists the timeline entries whose events are not yet out.
func (g *Grant) Unpublished() []Entry {
	var out []Entry
	for _, e := range g.Timeline {
		if !e.Published {
			out = append(out, e)
		}
	}
	return out
}

// MarkPublished flags the entry with that event ID as published.
func (g *Grant) MarkPublished(eventID string) bool {
	for i := range g.Timeline {
		if g.Timeline[i].EventID == eventID && !g.Timeline[i].Published {
			g.Timeline[i].Published = true
			return true
		}
	}
	return false
}

// MayHoldAccess reports whether an IAM binding of the grant may exist:
// from the moment it is cleared to activate until its removal has been
// read back. Such a grant can always be withdrawn and revoked, and its
// revocation task keeps being retried.
func (g *Grant) MayHoldAccess() bool {
	if g.State.HoldsSlot() {
		return true
	}
	return g.State.Terminal() && !g.StartTime.IsZero() && !g.RevocationVerified
}

// Approvals are the decisions that approve, one per approver.
func (g *Grant) Approvals() []Decision {
	var out []Decision
	for _, d := range g.Decisions {
		if d.Approved {
			out = append(out, d)
		}
	}
	return out
}

// DecidedBy reports whether approver has already answered. Addresses
// compare by ASCII case only (emailaddr.Equal): Unicode folding would take
// a look-alike for the approver.
func (g *Grant) DecidedBy(approver string) bool {
	return slices.ContainsFunc(g.Decisions, func(d Decision) bool { return emailaddr.Equal(d.Approver, approver) })
}
