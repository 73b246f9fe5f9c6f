package notify_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger"
	"github.com/jitpipeline/jit/internal/ledger/firestore"
	"github.com/jitpipeline/jit/internal/ledger/ledgertest"
	"github.com/jitpipeline/jit/internal/ledger/sqlite"
	"github.com/jitpipeline/jit/internal/mail"
	"github.com/jitpipeline/jit/internal/notify"
)

// recorder is a mail.Sender that keeps what it is given. fail, if set,
// decides per message whether the send fails (and with what).
type recorder struct {
	mu   sync.Mutex
	sent []*mail.Message
	fail func(m *mail.Message) error
}

func (r *recorder) Send(_ context.Context, m *mail.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	c := *m
	r.sent = append(r.sent, &c)
	return nil
}

func (r *recorder) messages() []*mail.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*mail.Message(nil), r.sent...)
}

// to returns the messages sent to addr.
func (r *recorder) to(addr string) []*mail.Message {
	var out []*mail.Message
	for _, m := range r.messages() {
		if m.To[0] == addr {
			out = append(out, m)
		}
	}
	return out
}

// fakeLinks mints links that say whom they are for.
type fakeLinks struct{}

func (fakeLinks) Link(_ context.Context, grantID, approver string, _ time.Time) (string, error) {
	return "https://approve.example/approvals/" + grantID + "?t=for-" + approver, nil
}

// memJournal is notify.Journal in memory, checked by the contract suite
// (TestMemJournalContract) so the notifier's tests rely on the same
// behaviour as the ledgers give.
type memJournal struct {
	clk    clock.Clock
	mu     sync.Mutex
	leases map[string]time.Time
	done   map[string]bool
}

func newMemJournal(clk clock.Clock) *memJournal {
	return &memJournal{clk: clk, leases: map[string]time.Time{}, done: map[string]bool{}}
}

func (j *memJournal) Claim(_ context.Context, key string, lease time.Duration) (bool, error) {
	if key == "" || lease <= 0 {
		return false, errors.New("bad claim")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.clk.Now()
	if j.done[key] {
		return false, nil
	}
	if until, ok := j.leases[key]; ok && now.Before(until) {
		return false, ledger.ErrClaimBusy
	}
	j.leases[key] = now.Add(lease)
	return true, nil
}

func (j *memJournal) Done(_ context.Context, key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.done[key] = true
	return nil
}

func (j *memJournal) Release(_ context.Context, key string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.done[key] {
		delete(j.leases, key)
	}
	return nil
}

func TestMemJournalContract(t *testing.T) {
	t.Parallel()
	ledgertest.RunJournal(t, func(t *testing.T, clk clock.Clock) ledgertest.Journal { return newMemJournal(clk) })
}

// The ledgers are the journals the notifier is given.
var (
	_ notify.Journal = (*sqlite.Ledger)(nil)
	_ notify.Journal = (*firestore.Ledger)(nil)
	_ notify.Journal = (*memJournal)(nil)
)

// Addresses and times of the fixtures.
const (
	requester = "bob@example.com"
	carol     = "carol@example.com"
	dave      = "dave@example.com"
	grantID   = "g-abcdefghijklmnopqrst"
)

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// env is a notifier with recording fakes.
type env struct {
	n       *notify.Notifier
	sent    *recorder
	journal *memJournal
	clk     *clock.Manual
	// approvers is what the Approvers function returns.
	approvers []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{sent: &recorder{}, clk: clock.NewManual(t0), approvers: []string{carol, dave}}
	e.journal = newMemJournal(e.clk)
	n, err := notify.New(notify.Config{
		Sender:  e.sent,
		Links:   fakeLinks{},
		Journal: e.journal,
		Approvers: func(context.Context, *grant.Grant) ([]string, error) {
			return e.approvers, nil
		},
		From:    "jit@example.com",
		Domain:  "jit.example.com",
		PageURL: "https://jit.example.com/",
		Logger:  slog.New(slog.DiscardHandler),
		Clock:   e.clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.n = n
	return e
}

// notify calls Notify and fails the test on an error.
func (e *env) notify(t *testing.T, eventType string, g *grant.Grant) {
	t.Helper()
	if err := e.n.Notify(t.Context(), eventType, g); err != nil {
		t.Fatalf("Notify(%s): %v", eventType, err)
	}
}

// requested is a grant that awaits the approval of carol or dave.
func requested(t *testing.T) *grant.Grant {
	t.Helper()
	g := &grant.Grant{
		ID:                grantID,
		Entitlement:       "demo.demo-project.admin",
		Requester:         requester,
		Justification:     "Incident INC-42: the database is down.\nNeed to restart it.",
		Inputs:            map[string]any{"ticket": "INC-42", "severity": float64(1)},
		RequestedDuration: time.Hour,
		Privileges: []grant.Privilege{
			{Resource: "projects/demo-project", Role: "roles/cloudsql.admin"},
			{Resource: "projects/demo-project", Role: "roles/compute.instanceAdmin.v1", Condition: `resource.name.startsWith("db-")`},
		},
		ApprovalRequired:  true,
		RequiredApprovals: 1,
		ApprovalDeadline:  t0.Add(24 * time.Hour),
		Approvers:         []string{"group:approvers@example.com"},
		CreateTime:        t0,
	}
	move(t, g, grant.ApprovalAwaited, events.TypeRequested, 0, requester, "awaiting 1 approval(s)")
	return g
}

// selfApproved is a grant that went straight to activation.
func selfApproved(t *testing.T) *grant.Grant {
	t.Helper()
	g := requested(t)
	g.ApprovalRequired, g.ApprovalDeadline, g.Approvers, g.RequiredApprovals, g.Timeline = false, time.Time{}, nil, 0, nil
	g.State = ""
	move(t, g, grant.Activating, events.TypeRequested, 0, requester, "self-approved")
	return g
}

// move makes a transition at t0+after.
func move(t *testing.T, g *grant.Grant, to grant.State, eventType string, after time.Duration, actor, msg string) {
	t.Helper()
	if _, err := g.Transition(to, eventType, t0.Add(after), actor, msg); err != nil {
		t.Fatal(err)
	}
}

func approve(t *testing.T, g *grant.Grant, by string) {
	t.Helper()
	g.Decisions = append(g.Decisions, grant.Decision{Approver: by, Approved: true, Reason: "looks right", Time: t0.Add(time.Minute)})
	move(t, g, grant.Activating, events.TypeApproved, time.Minute, by, "approved by "+by+" (1 of 1)")
}

func activate(t *testing.T, g *grant.Grant) {
	t.Helper()
	g.StartTime, g.EndTime = t0.Add(2*time.Minute), t0.Add(62*time.Minute)
	move(t, g, grant.Active, events.TypeActivated, 2*time.Minute, "grant-function", "binding written")
}

// hasLink reports whether m carries an approval link anywhere.
func hasLink(m *mail.Message) bool {
	for _, s := range append([]string{m.Text, m.HTML}, m.Links...) {
		if strings.Contains(s, "approve.example") {
			return true
		}
	}
	return false
}
