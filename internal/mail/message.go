// Package mail is how the pipeline tells people things: a Message (both a
// plain-text and an HTML part, threading headers) and a Sender that submits
// it. The notifications package composes messages; the SMTP sender in this
// package delivers them to the configured submission server (on Google
// Cloud) or to the embedded mailbox (locally), over a socket either way.
//
// The client is github.com/wneessen/go-mail: well kept and actively
// maintained, pure Go (no CGO), one library for the MIME composition and the
// SMTP client with STARTTLS, implicit TLS and AUTH. Servers (the local
// mailbox, this package's tests) use github.com/emersion/go-smtp.
package mail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// Message is one mail. Text and HTML are the same content; the HTML is
// already escaped by whoever rendered it (html/template).
type Message struct {
	// From is the sender address; empty means the sender's configured one.
	From string
	To   []string
	Cc   []string
	// Subject is a single line of plain text (no CR/LF).
	Subject string
	Text    string
	HTML    string
	// MessageID is the globally unique id, without angle brackets
	// ("grant-ID.event-ID.recipient-hash@jit.pipeline"): deterministic, so
	// the same notification sent again carries the same id.
	MessageID string
	// InReplyTo and References thread every mail about one grant into one
	// conversation (RFC 5322 §3.6.4), ids without angle brackets.
	InReplyTo  string
	References []string
	// Date is the time the notified transition happened.
	Date time.Time
	// Links are the URLs the message carries for the reader to open (the
	// approval page), for the local mailbox and tests; not a header.
	Links []string
}

// Sender submits messages. Send returns an error wrapping ErrTemporary when
// a later attempt may succeed (the caller lets its trigger redeliver) and
// ErrPermanent when it will not.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

var (
	// ErrTemporary: the server or network failed in a way worth retrying
	// (SMTP 4xx, timeouts, refused connections, a recipient rate limit).
	ErrTemporary = errors.New("temporary mail failure")
	// ErrPermanent: retrying will not help (SMTP 5xx, a bad address).
	ErrPermanent = errors.New("permanent mail failure")
)

// Validate reports every problem with the message at once.
func (m *Message) Validate() error {
	var errs []error
	if len(m.To) == 0 {
		errs = append(errs, errors.New("to: at least one recipient is required"))
	}
	for _, a := range append(append([]string{}, m.To...), m.Cc...) {
		if !emailaddr.Valid(a) {
			errs = append(errs, fmt.Errorf("recipient %q is not an email address", a))
		}
	}
	if m.From != "" && !emailaddr.Valid(m.From) {
		errs = append(errs, fmt.Errorf("from %q is not an email address", m.From))
	}
	if m.Subject == "" {
		errs = append(errs, errors.New("subject is required"))
	}
	for _, r := range m.Subject {
		if r == '\r' || r == '\n' {
			errs = append(errs, errors.New("subject must be one line"))
			break
		}
	}
	if m.Text == "" || m.HTML == "" {
		errs = append(errs, errors.New("both a text and an HTML part are required"))
	}
	if m.MessageID == "" {
		errs = append(errs, errors.New("message ID is required"))
	}
	return errors.Join(errs...)
}
