package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/internal/mail"
)

//go:embed templates
var templateFS embed.FS

var funcs = map[string]any{
	"indent": func(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") },
}

// The mail templates are parsed on the first mail rather than at package
// init: every deployed function links this package, and only the approval
// function sends mail (issue 14). They are embedded, so a parse error is
// a bug of the build, which the package's tests render mails to catch.
var (
	textTmpl = sync.OnceValue(func() *texttemplate.Template {
		return texttemplate.Must(texttemplate.New("mail.txt").Funcs(funcs).ParseFS(templateFS, "templates/mail.txt"))
	})
	htmlTmpl = sync.OnceValue(func() *htmltemplate.Template {
		return htmltemplate.Must(htmltemplate.New("mail.html").Funcs(funcs).ParseFS(templateFS, "templates/mail.html"))
	})
)

// view is what the templates see. Every string that came from a person
// (or from the policy) has been through oneLine or multiLine: the HTML
// template escapes it besides, the text part shows it as it is.
type view struct {
	Kind string
	// Approver is set in the mails to the people asked to approve.
	Approver    bool
	GrantID     string
	Requester   string
	Entitlement string
	Privileges  []privilege
	Duration    string
	// Justification may have several lines.
	Justification string
	Inputs        []input
	// Deadline is when the request expires (UTC, ISO 8601 and readable).
	Deadline  string
	Approvers []string
	Required  int
	// Decisions are the approvals (for approved) or the denial.
	Decisions []decision
	// Actor and Note: who made the transition and what they said (the
	// revocation's reason, the activation failure's cause).
	Actor string
	Note  string
	// When is the time of the transition; Until the end of the access.
	When  string
	Until string
	// Link is the approver's approval link; StatusLink the requester's
	// page of the grant.
	Link       string
	StatusLink string
}

type privilege struct{ Role, Resource, Condition string }

type input struct{ Name, Value string }

type decision struct{ Approver, Reason, When string }

// compose renders mail m about entry e.
func (n *Notifier) compose(ctx context.Context, g *grant.Grant, e *grant.Entry, m planned) (*mail.Message, error) {
	if m.approver && emailaddr.Equal(m.to, g.Requester) {
		// The planner never does this; this check makes sure no change to
		// it can mail a requester the means to approve themselves.
		return nil, fmt.Errorf("%w: the requester %s is no approver of their own request", errPermanent, m.to)
	}
	v := n.view(g, e, m)
	var links []string
	if m.kind == kindRequest {
		link, err := n.cfg.Links.Link(ctx, g.ID, m.to, g.ApprovalDeadline)
		if err != nil {
			return nil, fmt.Errorf("%w: failed to mint the approval link for %s: %w", mail.ErrTemporary, m.to, err)
		}
		v.Link = link
		links = append(links, link)
	} else if !m.approver {
		links = append(links, v.StatusLink)
	}
	var text, html bytes.Buffer
	if err := textTmpl().Execute(&text, v); err != nil {
		return nil, fmt.Errorf("failed to render the text part: %w", err)
	}
	if err := htmlTmpl().Execute(&html, v); err != nil {
		return nil, fmt.Errorf("failed to render the HTML part: %w", err)
	}
	root := n.messageID(g.ID, "requested", m.to)
	msg := &mail.Message{
		From:    n.cfg.From,
		To:      []string{m.to},
		Subject: subject(g),
		Text:    text.String(),
		HTML:    html.String(),
		Date:    e.Time,
		Links:   links,
	}
	if e.EventType == events.TypeRequested {
		msg.MessageID = root
	} else {
		msg.Subject = "Re: " + msg.Subject
		msg.MessageID = n.messageID(g.ID, e.EventID, m.to)
		msg.InReplyTo, msg.References = root, []string{root}
	}
	if err := msg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errPermanent, err)
	}
	return msg, nil
}

// subject is the same for every mail of a grant (later ones add "Re: "),
// so that clients which thread by subject as well as by References
// (Gmail) keep one conversation per grant. It carries no free text: a
// justification in a subject line would reach every preview and log of
// the mail system.
func subject(g *grant.Grant) string {
	return fmt.Sprintf("[jit] %s asks for %s", oneLine(g.Requester), oneLine(g.Entitlement))
}

// messageID is deterministic, so a mail sent again carries the same id:
// grant, transition and a hash of the recipient (the address itself does
// not belong in a header every relay logs), as RFC 5322 dot-atoms.
func (n *Notifier) messageID(grantID, transition, recipient string) string {
	sum := sha256.Sum256([]byte(emailaddr.Key(recipient)))
	return atom(grantID) + "." + atom(transition) + "." + hex.EncodeToString(sum[:10]) + "@" + n.cfg.Domain
}

// atom keeps letters, digits and hyphens, so an id made of it is a valid
// dot-atom whatever grant and event IDs look like.
func atom(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && (r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

func (n *Notifier) view(g *grant.Grant, e *grant.Entry, m planned) view {
	v := view{
		Kind:          m.kind,
		Approver:      m.approver,
		GrantID:       oneLine(g.ID),
		Requester:     oneLine(g.Requester),
		Entitlement:   oneLine(g.Entitlement),
		Justification: multiLine(g.Justification),
		Required:      max(g.RequiredApprovals, 1),
		When:          formatTime(e.Time),
		StatusLink:    strings.TrimSuffix(n.cfg.PageURL, "/") + "/grants/" + url.PathEscape(g.ID),
	}
	for _, p := range g.Privileges {
		v.Privileges = append(v.Privileges, privilege{oneLine(p.Role), oneLine(p.Resource), oneLine(p.Condition)})
	}
	if g.RequestedDuration > 0 {
		v.Duration = isoduration.Human(g.RequestedDuration) + " (" + isoduration.Format(g.RequestedDuration) + ")"
	}
	names := make([]string, 0, len(g.Inputs))
	for k := range g.Inputs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v.Inputs = append(v.Inputs, input{oneLine(k), multiLine(fmt.Sprint(g.Inputs[k]))})
	}
	if !g.ApprovalDeadline.IsZero() {
		v.Deadline = formatTime(g.ApprovalDeadline)
	}
	if !g.EndTime.IsZero() {
		v.Until = formatTime(g.EndTime)
	}
	// The addresses the requester sees are the people mailed, not the
	// policy's principals (a group says little about who will answer).
	for _, a := range m.asked {
		v.Approvers = append(v.Approvers, oneLine(a))
	}
	switch m.kind {
	case kindApproved:
		for _, d := range g.Decisions {
			if d.Approved && !d.Time.After(e.Time) {
				v.Decisions = append(v.Decisions, decision{oneLine(d.Approver), multiLine(d.Reason), formatTime(d.Time)})
			}
		}
	case kindDenied:
		v.Actor, v.Note = oneLine(e.Actor), multiLine(e.Message)
	case kindWithdrawn:
		v.Actor = oneLine(e.Actor)
	case kindFailed:
		v.Note = multiLine(e.Message)
	case kindRevoked:
		// Who revoked and why is on the entry that started the removal.
		if r := last(g, e, events.TypeRevoking); r != nil {
			v.Actor, v.Note = oneLine(r.Actor), multiLine(r.Message)
			v.When = formatTime(r.Time)
		}
	}
	return v
}

// formatTime writes t in UTC as ISO 8601 (what a machine or another time
// zone converts) followed by a form people read at a glance.
func formatTime(t time.Time) string {
	t = t.UTC()
	return t.Format(time.RFC3339) + " (" + t.Format("Mon 2 Jan 2006, 15:04 MST") + ")"
}

// oneLine makes s safe to show on one line: invalid UTF-8, control, format
// and bidirectional characters (which forge lines or reorder what is
// shown) become U+FFFD, line breaks and tabs a space. Long words are left
// whole; the HTML part wraps them.
func oneLine(s string) string { return clean(s, false) }

// multiLine is oneLine keeping line feeds and tabs (CRLF becomes LF).
func multiLine(s string) string { return clean(strings.ReplaceAll(s, "\r\n", "\n"), true) }

func clean(s string, lines bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			if lines {
				return r
			}
			return ' '
		case r == '\u2028' || r == '\u2029':
			if lines {
				return '\n'
			}
			return ' '
		case r == '\u200c' || r == '\u200d':
			return r // joiners that emoji and several scripts need
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return '\uFFFD'
		}
		return r
	}, s)
}
