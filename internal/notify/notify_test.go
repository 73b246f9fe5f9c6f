package notify_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/mail"
	"github.com/jitpipeline/jit/internal/notify"
)

const (
	subject = "[jit] bob@example.com asks for demo.demo-project.admin"
	status  = "https://jit.example.com/grants/" + grantID
)

func approvalLink(approver string) string {
	return "https://approve.example/approvals/" + grantID + "?t=for-" + approver
}

// summary is what decides who is told what.
type summary struct {
	To      string
	Cc      []string
	Subject string
	Links   []string
}

func summarize(ms []*mail.Message) []summary {
	var out []summary
	for _, m := range ms {
		if len(m.To) != 1 {
			panic(fmt.Sprintf("mail to %v: want one recipient", m.To))
		}
		out = append(out, summary{To: m.To[0], Cc: m.Cc, Subject: m.Subject, Links: m.Links})
	}
	// By recipient, and a person's replies ("Re: …") before their root.
	slices.SortFunc(out, func(a, b summary) int {
		return cmp.Or(strings.Compare(a.To, b.To), strings.Compare(a.Subject, b.Subject))
	})
	return out
}

// outcome is the summaries of a requester's outcome mail and its copies
// to the approvers who were asked.
func outcome() []summary {
	return []summary{
		{To: requester, Subject: "Re: " + subject, Links: []string{status}},
		{To: carol, Subject: "Re: " + subject},
		{To: dave, Subject: "Re: " + subject},
	}
}

func requesterOnly() []summary {
	return []summary{{To: requester, Subject: "Re: " + subject, Links: []string{status}}}
}

func TestNotifyRecipients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		grant func(t *testing.T) *grant.Grant
		event string
		want  []summary
		// wantText is in both parts of the requester's mail.
		wantText []string
	}{
		{
			name:  "requested",
			grant: requested,
			event: events.TypeRequested,
			want: []summary{
				{To: requester, Subject: subject, Links: []string{status}},
				{To: carol, Subject: subject, Links: []string{approvalLink(carol)}},
				{To: dave, Subject: subject, Links: []string{approvalLink(dave)}},
			},
			wantText: []string{"carol@example.com, dave@example.com", "2026-03-15T15:09:26Z", "INC-42"},
		},
		{
			name:  "self_approved_request",
			grant: selfApproved,
			event: events.TypeRequested,
		},
		{
			name: "approval_short_of_quorum",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				g.RequiredApprovals = 2
				g.Record(events.TypeApproved, t0.Add(time.Minute), carol, "approved by carol (1 of 2)")
				return g
			},
			event: events.TypeApproved,
		},
		{
			name:     "approved",
			grant:    func(t *testing.T) *grant.Grant { g := requested(t); approve(t, g, carol); return g },
			event:    events.TypeApproved,
			want:     outcome(),
			wantText: []string{"was approved", "Approved by carol@example.com", "looks right"},
		},
		{
			name: "denied",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				g.Decisions = append(g.Decisions, grant.Decision{Approver: dave, Reason: "no ticket", Time: t0.Add(time.Minute)})
				move(t, g, grant.Denied, events.TypeDenied, time.Minute, dave, "no ticket")
				return g
			},
			event:    events.TypeDenied,
			want:     outcome(),
			wantText: []string{"denied by dave@example.com", "no ticket"},
		},
		{
			name: "expired",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				move(t, g, grant.Expired, events.TypeExpired, 24*time.Hour, "workflow", "approval window closed")
				return g
			},
			event:    events.TypeExpired,
			want:     outcome(),
			wantText: []string{"nobody decided in time"},
		},
		{
			name: "withdrawn_before_approval",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				move(t, g, grant.Withdrawn, events.TypeWithdrawn, time.Minute, requester, "withdrawn by the requester before approval")
				return g
			},
			event:    events.TypeWithdrawn,
			want:     outcome(),
			wantText: []string{"was withdrawn by bob@example.com"},
		},
		{
			name: "withdrawn_after_activation",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				approve(t, g, carol)
				activate(t, g)
				move(t, g, grant.Withdrawing, events.TypeWithdrawing, 10*time.Minute, requester, "withdrawn by the requester")
				move(t, g, grant.Withdrawn, events.TypeWithdrawn, 11*time.Minute, "revoke-function", "binding removed")
				return g
			},
			event: events.TypeWithdrawn,
			want:  requesterOnly(),
		},
		{
			name:     "activated",
			grant:    func(t *testing.T) *grant.Grant { g := requested(t); approve(t, g, carol); activate(t, g); return g },
			event:    events.TypeActivated,
			want:     requesterOnly(),
			wantText: []string{"is active until 2026-03-14T16:11:26Z"},
		},
		{
			name: "activation_failed",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				approve(t, g, carol)
				move(t, g, grant.ActivationFailed, events.TypeActivationFailed, 2*time.Minute, "grant-function", "PERMISSION_DENIED on projects/demo-project")
				return g
			},
			event:    events.TypeActivationFailed,
			want:     requesterOnly(),
			wantText: []string{"could not be activated", "PERMISSION_DENIED on projects/demo-project"},
		},
		{
			name: "ended",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				approve(t, g, carol)
				activate(t, g)
				move(t, g, grant.Ended, events.TypeEnded, 62*time.Minute, "revoke-function", "binding removed")
				return g
			},
			event:    events.TypeEnded,
			want:     requesterOnly(),
			wantText: []string{"has ended"},
		},
		{
			name: "revoked",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				approve(t, g, carol)
				activate(t, g)
				move(t, g, grant.Revoking, events.TypeRevoking, 5*time.Minute, "admin@example.com", `revoked by an administrator: "incident over"`)
				move(t, g, grant.Revoked, events.TypeRevoked, 6*time.Minute, "revoke-function", "binding removed")
				return g
			},
			event:    events.TypeRevoked,
			want:     requesterOnly(),
			wantText: []string{"was revoked by admin@example.com", "incident over"},
		},
		{
			name: "revoking_sends_nothing",
			grant: func(t *testing.T) *grant.Grant {
				g := requested(t)
				approve(t, g, carol)
				activate(t, g)
				move(t, g, grant.Revoking, events.TypeRevoking, 5*time.Minute, "admin@example.com", "revoked")
				return g
			},
			event: events.TypeRevoking,
		},
		{
			name:  "command_sends_nothing",
			grant: requested,
			event: events.TypeApprovalRequested,
		},
		{
			name:  "self_approved_activated",
			grant: func(t *testing.T) *grant.Grant { g := selfApproved(t); activate(t, g); return g },
			event: events.TypeActivated,
			want:  requesterOnly(),
		},
		{
			name: "self_approved_ended",
			grant: func(t *testing.T) *grant.Grant {
				g := selfApproved(t)
				activate(t, g)
				move(t, g, grant.Ended, events.TypeEnded, 62*time.Minute, "revoke-function", "binding removed")
				return g
			},
			event: events.TypeEnded,
			want:  requesterOnly(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.notify(t, tc.event, tc.grant(t))
			sent := e.sent.messages()
			if diff := gocmp.Diff(tc.want, summarize(sent)); diff != "" {
				t.Errorf("mails (-want, +got):\n%s", diff)
			}
			for _, m := range sent {
				if err := m.Validate(); err != nil {
					t.Errorf("mail to %s: %v", m.To[0], err)
				}
				if m.From != "jit@example.com" {
					t.Errorf("mail to %s from %q", m.To[0], m.From)
				}
			}
			for _, m := range e.sent.to(requester) {
				for _, s := range tc.wantText {
					if !strings.Contains(m.Text, s) || !strings.Contains(m.HTML, s) {
						t.Errorf("requester's mail lacks %q in a part:\n%s\n%s", s, m.Text, m.HTML)
					}
				}
			}
		})
	}
}

// TestApproverMail: the approver learns everything they decide on.
func TestApproverMail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.notify(t, events.TypeRequested, requested(t))
	ms := e.sent.to(carol)
	if len(ms) != 1 {
		t.Fatalf("%d mails to carol, want 1", len(ms))
	}
	for _, part := range []struct{ name, body string }{{"text", ms[0].Text}, {"html", ms[0].HTML}} {
		for _, want := range []string{
			"bob@example.com", "demo.demo-project.admin",
			"roles/cloudsql.admin", "roles/compute.instanceAdmin.v1", "projects/demo-project",
			"1 hour (PT1H)", "Incident INC-42: the database is down.", "Need to restart it.",
			"ticket", "INC-42", "severity",
			"2026-03-15T15:09:26Z", "15:09 UTC",
			"https://approve.example/approvals/" + grantID + "?t=for-carol",
		} {
			if part.name == "html" {
				want = strings.ReplaceAll(want, "&", "&amp;")
			}
			if !strings.Contains(part.body, want) {
				t.Errorf("%s part lacks %q:\n%s", part.name, want, part.body)
			}
		}
		if strings.Contains(part.body, "for-dave") {
			t.Errorf("carol's %s part carries dave's link", part.name)
		}
	}
}

// TestEscaping: what people typed shows as text in both parts, never as
// markup, and cannot forge lines or reorder what is shown.
func TestEscaping(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("w", 2000)
	g := requested(t)
	g.Justification = `<script>alert("x")</script> it's "quoted" & ` + long + "\x1b[31m red \u202e evil\r\nForged: header"
	g.Inputs = map[string]any{`<b>name</b>`: `<img src=x onerror=alert(1)>`}
	e := newEnv(t)
	e.notify(t, events.TypeRequested, g)
	for _, m := range e.sent.messages() {
		if strings.ContainsAny(m.Subject, "\r\n") || strings.Contains(m.Subject, "script") {
			t.Errorf("subject %q carries free text or breaks", m.Subject)
		}
		for _, bad := range []string{"<script>", `<img src=x`, "<b>name</b>", "\x1b", "\u202e", "\r"} {
			if strings.Contains(m.HTML, bad) {
				t.Errorf("HTML to %s contains %q", m.To[0], bad)
			}
		}
		for _, want := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "it&#39;s &#34;quoted&#34; &amp;", long, "overflow-wrap:anywhere", "&lt;img src=x onerror=alert(1)&gt;"} {
			if !strings.Contains(m.HTML, want) {
				t.Errorf("HTML to %s lacks %q", m.To[0], want)
			}
		}
		for _, bad := range []string{"\x1b", "\u202e", "\r"} {
			if strings.Contains(m.Text, bad) {
				t.Errorf("text to %s contains %q", m.To[0], bad)
			}
		}
		// Text shows what was typed, as it was typed: a long word stays
		// whole, markup is just characters.
		for _, want := range []string{`<script>alert("x")</script> it's "quoted" &`, long, "\uFFFD[31m red \uFFFD evil\n", `<img src=x onerror=alert(1)>`} {
			if !strings.Contains(m.Text, want) {
				t.Errorf("text to %s lacks %q", m.To[0], want)
			}
		}
	}
}

func rootID(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return grantID + ".requested." + hex.EncodeToString(sum[:10]) + "@jit.example.com"
}

// TestThreading: each person's mails about a grant form one conversation
// under their own root, and the same mail sent again carries the same id.
func TestThreading(t *testing.T) {
	t.Parallel()
	run := func() []*mail.Message {
		e := newEnv(t)
		g := requested(t)
		e.notify(t, events.TypeRequested, g)
		approve(t, g, carol)
		e.notify(t, events.TypeApproved, g)
		activate(t, g)
		e.notify(t, events.TypeActivated, g)
		return e.sent.messages()
	}
	first := run()
	type thread struct {
		To, MessageID, InReplyTo string
		References               []string
	}
	var got []thread
	for _, m := range first {
		got = append(got, thread{m.To[0], m.MessageID, m.InReplyTo, m.References})
	}
	id := func(event, to string) string { return strings.Replace(rootID(to), ".requested.", "."+event+".", 1) }
	reply := func(event, to string) thread {
		return thread{to, id(event, to), rootID(to), []string{rootID(to)}}
	}
	want := []thread{
		{carol, rootID(carol), "", nil},
		{dave, rootID(dave), "", nil},
		{requester, rootID(requester), "", nil},
		reply(grantID+"-2", requester),
		reply(grantID+"-2", carol),
		reply(grantID+"-2", dave),
		reply(grantID+"-3", requester),
	}
	sortThreads := func(ts []thread) {
		slices.SortFunc(ts, func(a, b thread) int { return strings.Compare(a.MessageID, b.MessageID) })
	}
	sortThreads(want)
	sortThreads(got)
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("threading (-want, +got):\n%s", diff)
	}
	again := run()
	for i := range first {
		if first[i].MessageID != again[i].MessageID || !first[i].Date.Equal(again[i].Date) {
			t.Errorf("mail %d sent again: id %s, %v; first %s, %v", i, again[i].MessageID, again[i].Date, first[i].MessageID, first[i].Date)
		}
	}
}

// TestRedelivery: an event delivered again sends nothing more.
func TestRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := requested(t)
	e.notify(t, events.TypeRequested, g)
	approve(t, g, carol)
	for range 3 {
		e.notify(t, events.TypeRequested, g)
		e.notify(t, events.TypeApproved, g)
	}
	if got := len(e.sent.messages()); got != 6 {
		t.Errorf("%d mails, want 6 (3 requests, 3 approvals): %v", got, summarize(e.sent.messages()))
	}
}

// TestOutOfOrder: events that arrive in another order than they happened
// still send each mail once.
func TestOutOfOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := requested(t)
	approve(t, g, carol)
	activate(t, g)
	for _, ev := range []string{events.TypeActivated, events.TypeApproved, events.TypeActivated, events.TypeApproved} {
		e.notify(t, ev, g)
	}
	// The request's event arrives last, when the grant no longer awaits
	// approval: the requester's mail goes out, approval links do not.
	e.notify(t, events.TypeRequested, g)
	want := []summary{
		{To: requester, Subject: "Re: " + subject, Links: []string{status}},
		{To: requester, Subject: "Re: " + subject, Links: []string{status}},
		{To: requester, Subject: subject, Links: []string{status}},
		{To: carol, Subject: "Re: " + subject},
		{To: dave, Subject: "Re: " + subject},
	}
	got := summarize(e.sent.messages())
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("mails (-want, +got):\n%s", diff)
	}
}

// TestConcurrentDeliveries: the same event delivered to several
// instances at once sends each mail once. A delivery that finds a mail
// claimed by another still under way fails for now (the trigger redelivers
// it), so a sender that died mid-way does not lose the mail; redelivered
// after the lease, it finds everything done and sends nothing more.
func TestConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := requested(t)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := e.n.Notify(t.Context(), events.TypeRequested, g); err != nil && !errors.Is(err, mail.ErrTemporary) {
				t.Errorf("Notify: %v", err)
			}
		})
	}
	wg.Wait()
	if got := len(e.sent.messages()); got != 3 {
		t.Errorf("%d mails, want 3", got)
	}
	e.clk.Advance(notify.DefaultLease)
	if err := e.n.Notify(t.Context(), events.TypeRequested, g); err != nil {
		t.Errorf("redelivery after the lease: %v", err)
	}
	if got := len(e.sent.messages()); got != 3 {
		t.Errorf("%d mails after the redelivery, want 3", got)
	}
}

// TestSenderDiedMidway: a claim whose sender died (never done, never
// released) holds redeliveries off until its lease ends, then the mail is
// sent — not lost.
func TestSenderDiedMidway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := requested(t)
	key := g.ID + "/" + g.Timeline[0].EventID + "/" + requester
	if ok, err := e.journal.Claim(t.Context(), key, notify.DefaultLease); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	if err := e.n.Notify(t.Context(), events.TypeRequested, g); !errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("Notify under a live claim = %v, want a temporary failure", err)
	}
	e.clk.Advance(notify.DefaultLease)
	if err := e.n.Notify(t.Context(), events.TypeRequested, g); err != nil {
		t.Fatalf("Notify after the lease: %v", err)
	}
	if got := len(e.sent.messages()); got != 3 {
		t.Errorf("%d mails, want 3 (the requester's included)", got)
	}
}

// TestRequestAfterDeadline: no approval link goes out once the window has
// closed.
func TestRequestAfterDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clk.Advance(24 * time.Hour)
	e.notify(t, events.TypeRequested, requested(t))
	if diff := gocmp.Diff([]summary{{To: requester, Subject: subject, Links: []string{status}}}, summarize(e.sent.messages())); diff != "" {
		t.Errorf("mails (-want, +got):\n%s", diff)
	}
}

// TestTemporaryFailure: a send that fails for now makes Notify fail with
// mail.ErrTemporary (the trigger redelivers); the redelivery sends what
// is missing and nothing twice.
func TestTemporaryFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	failures := 1
	e.sent.fail = func(m *mail.Message) error {
		if m.To[0] == dave && failures > 0 {
			failures--
			return fmt.Errorf("421 try later: %w", mail.ErrTemporary)
		}
		return nil
	}
	g := requested(t)
	err := e.n.Notify(t.Context(), events.TypeRequested, g)
	if !errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("Notify = %v, want an error wrapping mail.ErrTemporary", err)
	}
	if got := len(e.sent.to(dave)); got != 0 {
		t.Fatalf("%d mails to dave after the failure", got)
	}
	e.notify(t, events.TypeRequested, g)
	e.notify(t, events.TypeRequested, g)
	for _, to := range []string{requester, carol, dave} {
		if got := len(e.sent.to(to)); got != 1 {
			t.Errorf("%d mails to %s, want 1", got, to)
		}
	}
}

// TestUnclassifiedFailure: an error that is neither temporary nor
// permanent is retried like a temporary one.
func TestUnclassifiedFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sent.fail = func(*mail.Message) error { return errors.New("connection reset") }
	err := e.n.Notify(t.Context(), events.TypeRequested, requested(t))
	if !errors.Is(err, mail.ErrTemporary) {
		t.Errorf("Notify = %v, want an error wrapping mail.ErrTemporary", err)
	}
}

// TestPermanentFailure: a recipient refused for good is not retried, and
// the others still get their mail.
func TestPermanentFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	attempts := 0
	e.sent.fail = func(m *mail.Message) error {
		if m.To[0] == dave {
			attempts++
			return fmt.Errorf("550 no such user: %w", mail.ErrPermanent)
		}
		return nil
	}
	g := requested(t)
	e.notify(t, events.TypeRequested, g)
	e.notify(t, events.TypeRequested, g)
	if attempts != 1 {
		t.Errorf("%d attempts to mail dave, want 1", attempts)
	}
	if got := len(e.sent.messages()); got != 2 {
		t.Errorf("%d mails, want 2 (requester and carol)", got)
	}
}

// TestRequesterNeverApprover: whatever the Approvers function says, the
// requester gets no approval link, in any spelling of their address.
func TestRequesterNeverApprover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.approvers = []string{"BOB@example.com", requester, carol, carol, "not an address"}
	g := requested(t)
	e.notify(t, events.TypeRequested, g)
	approve(t, g, carol)
	e.notify(t, events.TypeApproved, g)
	want := []summary{
		{To: requester, Subject: "Re: " + subject, Links: []string{status}},
		{To: requester, Subject: subject, Links: []string{status}},
		{To: carol, Subject: "Re: " + subject},
		{To: carol, Subject: subject, Links: []string{approvalLink(carol)}},
	}
	got := summarize(e.sent.messages())
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("mails (-want, +got):\n%s", diff)
	}
	for _, m := range e.sent.messages() {
		if !strings.EqualFold(m.To[0], requester) {
			continue
		}
		if hasLink(m) {
			t.Errorf("the requester got an approval link: %s", m.Text)
		}
	}
	if strings.Contains(e.sent.to(requester)[0].Text, "BOB@") {
		t.Error("the requester is listed among the people asked")
	}
}

// TestApproversFailure: a failed approver lookup is temporary; the
// requester's request mail waits for it (it lists them), their outcome
// mails do not.
func TestApproversFailure(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	sent := &recorder{}
	n, err := notify.New(notify.Config{
		Sender: sent, Links: fakeLinks{}, Journal: newMemJournal(clk),
		Approvers: func(context.Context, *grant.Grant) ([]string, error) { return nil, errors.New("directory down") },
		From:      "jit@example.com", Domain: "jit.example.com", PageURL: "https://jit.example.com",
		Logger: slog.New(slog.DiscardHandler), Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), events.TypeRequested, requested(t)); !errors.Is(err, mail.ErrTemporary) {
		t.Errorf("Notify = %v, want an error wrapping mail.ErrTemporary", err)
	}
	if got := len(sent.messages()); got != 0 {
		t.Errorf("%d mails sent", got)
	}
	// An outcome reaches the requester all the same.
	g := requested(t)
	approve(t, g, carol)
	if err := n.Notify(t.Context(), events.TypeApproved, g); !errors.Is(err, mail.ErrTemporary) {
		t.Errorf("Notify = %v, want an error wrapping mail.ErrTemporary", err)
	}
	if diff := gocmp.Diff(requesterOnly(), summarize(sent.messages())); diff != "" {
		t.Errorf("mails (-want, +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  notify.Config
		want []string
	}{
		{
			name: "empty",
			want: []string{"Sender is required", "Links is required", "Journal is required", "Approvers is required",
				"Logger is required", "Clock is required", `From ""`, `Domain ""`, `PageURL ""`},
		},
		{
			name: "malformed",
			cfg:  notify.Config{From: "jit", Domain: "local", PageURL: "/pages", Lease: -time.Second},
			want: []string{`From "jit"`, `Domain "local"`, `PageURL "/pages"`, "Lease -1s is negative"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := notify.New(tc.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
