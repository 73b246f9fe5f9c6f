package mail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/mail"
)

// syncBuffer is a log sink safe for the sender's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newSender builds a sender for the test server on port, logging to a
// buffer that the test checks for the password at the end.
func newSender(t *testing.T, port int, edit func(*mail.SMTPConfig)) *mail.SMTP {
	t.Helper()
	logs := &syncBuffer{}
	cfg := mail.SMTPConfig{
		Host:      "127.0.0.1",
		Port:      port,
		Security:  mail.SecuritySTARTTLS,
		Username:  testUser,
		Password:  testPassword,
		From:      "jit@pipeline.example",
		HeloName:  "jit.test",
		Timeout:   10 * time.Second,
		TLSConfig: clientTLS(t),
		Backoff:   time.Millisecond,
		Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), testPassword) {
			t.Errorf("the password appears in the log:\n%s", logs)
		}
		if strings.Contains(logs.String(), "Hello in text") {
			t.Errorf("a message body appears in the log:\n%s", logs)
		}
	})
	return s
}

func testMessage() *mail.Message {
	return &mail.Message{
		To:         []string{"alice@example.com"},
		Cc:         []string{"bob@example.com"},
		Subject:    "Access request awaiting your approval",
		Text:       "Hello in text.\nOpen https://jit.example/approve/1\n",
		HTML:       "<p>Hello in <b>HTML</b>.</p>\n<p><a href=\"https://jit.example/approve/1\">Approve</a></p>\n",
		MessageID:  "grant-1.event-2.abc@jit.pipeline",
		InReplyTo:  "grant-1.event-1.abc@jit.pipeline",
		References: []string{"grant-1.event-0.abc@jit.pipeline", "grant-1.event-1.abc@jit.pipeline"},
		Date:       time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC),
	}
}

// received is a delivered message as a reader's client sees it.
type received struct {
	EnvelopeFrom string
	EnvelopeTo   []string
	From, To, Cc string
	Subject      string
	MessageID    string
	InReplyTo    string
	References   string
	Date         time.Time
	Auto         string
	Suppress     string
	ContentType  string
	PartTypes    []string
	Text, HTML   string
}

// parse reads env the way a mail client would: net/mail for the header,
// mime/multipart for the parts (which also undoes quoted-printable).
func parse(t *testing.T, env envelope) received {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(env.Raw))
	if err != nil {
		t.Fatalf("ReadMessage: %v\n%s", err, env.Raw)
	}
	h := msg.Header
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatalf("subject %q: %v", h.Get("Subject"), err)
	}
	date, err := h.Date()
	if err != nil {
		t.Fatalf("date: %v", err)
	}
	got := received{
		EnvelopeFrom: env.From,
		EnvelopeTo:   env.To,
		From:         h.Get("From"),
		To:           h.Get("To"),
		Cc:           h.Get("Cc"),
		Subject:      subject,
		MessageID:    h.Get("Message-ID"),
		InReplyTo:    h.Get("In-Reply-To"),
		References:   h.Get("References"),
		Date:         date.UTC(),
		Auto:         h.Get("Auto-Submitted"),
		Suppress:     h.Get("X-Auto-Response-Suppress"),
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	got.ContentType = mt
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		ct := p.Header.Get("Content-Type")
		got.PartTypes = append(got.PartTypes, ct)
		// SMTP carries CRLF line ends; the inputs use LF.
		text := strings.ReplaceAll(string(body), "\r\n", "\n")
		switch {
		case strings.HasPrefix(ct, "text/plain"):
			got.Text = text
		case strings.HasPrefix(ct, "text/html"):
			got.HTML = text
		}
	}
	return got
}

// wantReceived is what m should look like on arrival.
func wantReceived(m *mail.Message) received {
	refs := make([]string, len(m.References))
	for i, r := range m.References {
		refs[i] = "<" + r + ">"
	}
	return received{
		EnvelopeFrom: "jit@pipeline.example",
		EnvelopeTo:   append(append([]string{}, m.To...), m.Cc...),
		From:         "<jit@pipeline.example>",
		To:           "<" + strings.Join(m.To, ">, <") + ">",
		Cc:           "<" + strings.Join(m.Cc, ">, <") + ">",
		Subject:      m.Subject,
		MessageID:    "<" + m.MessageID + ">",
		InReplyTo:    "<" + m.InReplyTo + ">",
		References:   strings.Join(refs, " "),
		Date:         m.Date,
		Auto:         "auto-generated",
		Suppress:     "All",
		ContentType:  "multipart/alternative",
		PartTypes:    []string{"text/plain; charset=UTF-8", "text/html; charset=UTF-8"},
		Text:         m.Text,
		HTML:         m.HTML,
	}
}

// TestSendDelivers: each way to reach a server delivers a message that
// parses back into its inputs, threading and auto-reply headers included.
func TestSendDelivers(t *testing.T) {
	t.Parallel()
	longWord := strings.Repeat("x", 2000)
	tests := []struct {
		name string
		mode serverMode
		edit func(*mail.SMTPConfig)
		msg  func(*mail.Message)
		want counts
	}{
		{
			name: "starttls_auth",
			mode: modeSTARTTLS,
			want: counts{Conns: 1, Auths: 1, Mails: 1, Datas: 1, Accepted: 1},
		},
		{
			name: "implicit_tls_auth",
			mode: modeImplicitTLS,
			edit: func(c *mail.SMTPConfig) { c.Security = mail.SecurityTLS },
			want: counts{Conns: 1, Auths: 1, Mails: 1, Datas: 1, Accepted: 1},
		},
		{
			name: "none_on_loopback_without_auth",
			mode: modePlain,
			edit: func(c *mail.SMTPConfig) {
				c.Security, c.Username, c.Password = mail.SecurityNone, "", ""
			},
			want: counts{Conns: 1, Mails: 1, Datas: 1, Accepted: 1},
		},
		{
			name: "none_on_loopback_with_auth",
			mode: modePlain,
			edit: func(c *mail.SMTPConfig) { c.Security = mail.SecurityNone },
			want: counts{Conns: 1, Auths: 1, Mails: 1, Datas: 1, Accepted: 1},
		},
		{
			name: "non_ascii_subject_and_long_word",
			mode: modeSTARTTLS,
			msg: func(m *mail.Message) {
				m.Subject = "Zugriff für Größe genehmigt ✓ — 日本語のテスト, ein sehr langer Betreff, der gefaltet werden muss"
				m.Text = "Grüße!\n" + longWord + "\nEnde = Schluss\n"
				m.HTML = "<p>Grüße! " + longWord + "</p>\n"
			},
			want: counts{Conns: 1, Auths: 1, Mails: 1, Datas: 1, Accepted: 1},
		},
		{
			name: "no_cc_no_threading",
			mode: modeSTARTTLS,
			msg: func(m *mail.Message) {
				m.Cc, m.InReplyTo, m.References = nil, "", nil
			},
			want: counts{Conns: 1, Auths: 1, Mails: 1, Datas: 1, Accepted: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be, port := startServer(t, tc.mode)
			s := newSender(t, port, tc.edit)
			m := testMessage()
			if tc.msg != nil {
				tc.msg(m)
			}
			if err := s.Send(t.Context(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if diff := cmp.Diff(tc.want, be.counts()); diff != "" {
				t.Errorf("server saw (-want, +got):\n%s", diff)
			}
			envs := be.envelopes()
			if len(envs) != 1 {
				t.Fatalf("accepted %d messages, want 1", len(envs))
			}
			want := wantReceived(m)
			if len(m.Cc) == 0 {
				want.Cc = ""
			}
			if m.InReplyTo == "" {
				want.InReplyTo, want.References = "", ""
			}
			if diff := cmp.Diff(want, parse(t, envs[0])); diff != "" {
				t.Errorf("received message (-want, +got):\n%s", diff)
			}
			for i, line := range strings.Split(string(envs[0].Raw), "\r\n") {
				if len(line) > 998 {
					t.Errorf("line %d is %d characters long (RFC 5322 allows 998)", i, len(line))
				}
			}
		})
	}
}

// TestSendFailures: SMTP replies and network failures map to ErrTemporary
// (retried within Send) or ErrPermanent (not retried), as the server saw.
func TestSendFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mode    serverMode
		fail    []failure
		edit    func(*mail.SMTPConfig)
		wantErr error // nil: delivered
		want    counts
	}{
		{
			name: "wrong_password_535",
			mode: modeSTARTTLS,
			edit: func(c *mail.SMTPConfig) { c.Password = "wrong-" + testPassword },
			// AUTH fails; nothing else is sent, and the attempt is not repeated.
			wantErr: mail.ErrPermanent,
			want:    counts{Conns: 1, Auths: 1},
		},
		{
			name:    "451_once_at_data_then_delivered",
			mode:    modeSTARTTLS,
			fail:    []failure{{At: "DATA", Code: 451, Times: 1}},
			want:    counts{Conns: 2, Auths: 2, Mails: 2, Datas: 2, Accepted: 1},
			wantErr: nil,
		},
		{
			name:    "451_always_at_rcpt",
			mode:    modeSTARTTLS,
			fail:    []failure{{At: "RCPT", Code: 451, Times: -1}},
			wantErr: mail.ErrTemporary,
			want:    counts{Conns: 3, Auths: 3, Mails: 3},
		},
		{
			name:    "451_always_attempts_5",
			mode:    modeSTARTTLS,
			fail:    []failure{{At: "MAIL", Code: 451, Times: -1}},
			edit:    func(c *mail.SMTPConfig) { c.Attempts = 5 },
			wantErr: mail.ErrTemporary,
			want:    counts{Conns: 5, Auths: 5, Mails: 5},
		},
		{
			name:    "550_at_rcpt_not_retried",
			mode:    modeSTARTTLS,
			fail:    []failure{{At: "RCPT", Code: 550, Times: -1}},
			wantErr: mail.ErrPermanent,
			want:    counts{Conns: 1, Auths: 1, Mails: 1},
		},
		{
			name:    "554_at_data_not_retried",
			mode:    modeSTARTTLS,
			fail:    []failure{{At: "DATA", Code: 554, Times: -1}},
			wantErr: mail.ErrPermanent,
			want:    counts{Conns: 1, Auths: 1, Mails: 1, Datas: 1},
		},
		{
			name:    "dropped_twice_then_delivered",
			mode:    modeSTARTTLS,
			fail:    []failure{{At: "MAIL", Code: 0, Times: 2}},
			want:    counts{Conns: 3, Auths: 3, Mails: 3, Datas: 1, Accepted: 1},
			wantErr: nil,
		},
		{
			name:    "dropped_always",
			mode:    modeSTARTTLS,
			fail:    []failure{{At: "DATA", Code: 0, Times: -1}},
			wantErr: mail.ErrTemporary,
			want:    counts{Conns: 3, Auths: 3, Mails: 3, Datas: 3},
		},
		{
			name: "starttls_not_offered",
			// The server would take AUTH in the clear; the sender must not
			// offer it, nor fall back to sending without TLS.
			mode:    modePlain,
			wantErr: mail.ErrPermanent,
			want:    counts{Conns: 1},
		},
		{
			name:    "untrusted_certificate",
			mode:    modeImplicitTLS,
			edit:    func(c *mail.SMTPConfig) { c.Security, c.TLSConfig = mail.SecurityTLS, &tls.Config{} },
			wantErr: mail.ErrPermanent,
			want:    counts{Conns: 1},
		},
		{
			name:    "untrusted_certificate_starttls",
			mode:    modeSTARTTLS,
			edit:    func(c *mail.SMTPConfig) { c.TLSConfig = nil },
			wantErr: mail.ErrPermanent,
			want:    counts{Conns: 1},
		},
		{
			name:    "implicit_tls_to_a_starttls_server",
			mode:    modeSTARTTLS,
			edit:    func(c *mail.SMTPConfig) { c.Security = mail.SecurityTLS },
			wantErr: mail.ErrPermanent,
			want:    counts{Conns: 1},
		},
		{
			name:    "starttls_to_an_implicit_tls_server",
			mode:    modeImplicitTLS,
			wantErr: mail.ErrTemporary, // the server waits for a ClientHello until the attempt times out
			edit:    func(c *mail.SMTPConfig) { c.Timeout, c.Attempts = 100*time.Millisecond, 2 },
			want:    counts{Conns: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be, port := startServer(t, tc.mode, tc.fail...)
			s := newSender(t, port, tc.edit)
			err := s.Send(t.Context(), testMessage())
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("Send: %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("Send = %v, want an error wrapping %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testPassword) {
				t.Errorf("the error shows the password: %v", err)
			}
			if errors.Is(err, mail.ErrTemporary) && errors.Is(err, mail.ErrPermanent) {
				t.Errorf("Send = %v, both temporary and permanent", err)
			}
			if diff := cmp.Diff(tc.want, be.counts()); diff != "" {
				t.Errorf("server saw (-want, +got):\n%s", diff)
			}
		})
	}
}

// TestSendRefusesBeforeConnecting: invalid messages and header injection
// never reach the server.
func TestSendRefusesBeforeConnecting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		msg     func(*mail.Message)
		wantSub string
	}{
		{"subject_crlf", func(m *mail.Message) { m.Subject = "Hi\r\nBcc: eve@evil.example" }, "subject must be one line"},
		{"to_crlf", func(m *mail.Message) { m.To = []string{"alice@example.com\r\nBcc: eve@evil.example"} }, "line break"},
		{"cc_lf", func(m *mail.Message) { m.Cc = []string{"bob@example.com\nX: y"} }, "line break"},
		{"from_cr", func(m *mail.Message) { m.From = "jit@pipeline.example\rX: y" }, "line break"},
		{"message_id_crlf", func(m *mail.Message) { m.MessageID = "a@b\r\nBcc: eve@evil.example" }, "message id"},
		{"in_reply_to_lf", func(m *mail.Message) { m.InReplyTo = "a@b\nX: y" }, "message id"},
		{"references_cr", func(m *mail.Message) { m.References = []string{"a@b", "c@d\rX: y"} }, "message id"},
		{"references_empty", func(m *mail.Message) { m.References = []string{""} }, "empty message id"},
		{"message_id_brackets", func(m *mail.Message) { m.MessageID = "<a@b>" }, "angle brackets"},
		{"message_id_no_at", func(m *mail.Message) { m.MessageID = "grant-1" }, "left@right"},
		{"no_html", func(m *mail.Message) { m.HTML = "" }, "HTML part"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be, port := startServer(t, modeSTARTTLS)
			s := newSender(t, port, nil)
			m := testMessage()
			tc.msg(m)
			err := s.Send(t.Context(), m)
			if !errors.Is(err, mail.ErrPermanent) || !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("Send = %v, want ErrPermanent mentioning %q", err, tc.wantSub)
			}
			if diff := cmp.Diff(counts{}, be.counts()); diff != "" {
				t.Errorf("server was contacted (-want, +got):\n%s", diff)
			}
		})
	}
	t.Run("nil_message", func(t *testing.T) {
		t.Parallel()
		s := newSender(t, 1, nil)
		if err := s.Send(t.Context(), nil); !errors.Is(err, mail.ErrPermanent) {
			t.Errorf("Send(nil) = %v, want ErrPermanent", err)
		}
	})
}

// TestSendPerRecipientLimit: over the limit Send returns ErrTemporary
// without contacting the server; failed sends do not count; the window
// slides.
func TestSendPerRecipientLimit(t *testing.T) {
	t.Parallel()
	be, port := startServer(t, modeSTARTTLS)
	clk := clock.NewManual(time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC))
	s := newSender(t, port, func(c *mail.SMTPConfig) {
		c.PerRecipient = mail.RateLimit{Messages: 2, Interval: time.Hour}
		c.Clock = clk
	})
	to := func(addrs ...string) *mail.Message {
		m := testMessage()
		m.To, m.Cc = addrs, nil
		return m
	}
	steps := []struct {
		name    string
		advance time.Duration
		msg     *mail.Message
		wantErr error
		want    int // messages the server accepted so far
	}{
		{"first", 0, to("alice@example.com"), nil, 1},
		{"second_other_case", time.Minute, to("Alice@Example.com"), nil, 2},
		{"third_refused", time.Minute, to("alice@example.com"), mail.ErrTemporary, 2},
		{"other_recipient_unaffected", 0, to("carol@example.com"), nil, 3},
		{"any_recipient_over_refuses_all", 0, to("carol@example.com", "alice@example.com"), mail.ErrTemporary, 3},
		{"first_left_the_window", time.Hour - 2*time.Minute + time.Second, to("alice@example.com"), nil, 4},
		{"full_again", 0, to("alice@example.com"), mail.ErrTemporary, 4},
	}
	// Steps share one sender, so they run in order.
	for _, st := range steps {
		clk.Advance(st.advance)
		err := s.Send(t.Context(), st.msg)
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Send = %v, want %v", st.name, err, st.wantErr)
		}
		if got := be.counts().Accepted; got != st.want {
			t.Errorf("%s: server accepted %d, want %d", st.name, got, st.want)
		}
	}
	if got := be.counts().Conns; got != 4 {
		t.Errorf("server had %d connections, want 4 (refused sends must not connect)", got)
	}
}

// TestSendPerRecipientLimitFailedSendsDoNotCount: a message the server
// refused was not sent, so it does not use up the recipient's quota.
func TestSendPerRecipientLimitFailedSendsDoNotCount(t *testing.T) {
	t.Parallel()
	be, port := startServer(t, modeSTARTTLS, failure{At: "DATA", Code: 550, Times: 2})
	s := newSender(t, port, func(c *mail.SMTPConfig) {
		c.PerRecipient = mail.RateLimit{Messages: 1, Interval: time.Hour}
	})
	for range 2 {
		if err := s.Send(t.Context(), testMessage()); !errors.Is(err, mail.ErrPermanent) {
			t.Fatalf("Send = %v, want ErrPermanent", err)
		}
	}
	if err := s.Send(t.Context(), testMessage()); err != nil {
		t.Fatalf("Send after refusals: %v", err)
	}
	if err := s.Send(t.Context(), testMessage()); !errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("Send over the limit = %v, want ErrTemporary", err)
	}
	if diff := cmp.Diff(counts{Conns: 3, Auths: 3, Mails: 3, Datas: 3, Accepted: 1}, be.counts()); diff != "" {
		t.Errorf("server saw (-want, +got):\n%s", diff)
	}
}

// TestSendContextCancelled: a cancelled context ends Send promptly, whether
// the server stalls mid-conversation or the sender is waiting to retry.
func TestSendContextCancelled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		port   func(t *testing.T) int
		edit   func(*mail.SMTPConfig)
		cancel time.Duration // after; 0 means before Send
	}{
		{"stalled_server", stalledServer, nil, 100 * time.Millisecond},
		{"already_cancelled", stalledServer, nil, 0},
		{"waiting_to_retry", func(t *testing.T) int {
			_, port := startServer(t, modeSTARTTLS, failure{At: "MAIL", Code: 421, Times: -1})
			return port
		}, func(c *mail.SMTPConfig) { c.Backoff = time.Hour }, 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSender(t, tc.port(t), func(c *mail.SMTPConfig) {
				c.Timeout = time.Minute
				if tc.edit != nil {
					tc.edit(c)
				}
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancel == 0 {
				cancel()
			} else {
				time.AfterFunc(tc.cancel, cancel)
			}
			start := time.Now()
			err := s.Send(ctx, testMessage())
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Send took %s after cancellation", took)
			}
			if !errors.Is(err, mail.ErrTemporary) || !errors.Is(err, context.Canceled) {
				t.Errorf("Send = %v, want ErrTemporary and context.Canceled", err)
			}
		})
	}
}

// TestSendTimeout: Timeout bounds an attempt against a server that never
// answers; the failure is temporary.
func TestSendTimeout(t *testing.T) {
	t.Parallel()
	s := newSender(t, stalledServer(t), func(c *mail.SMTPConfig) {
		c.Timeout, c.Attempts = 200*time.Millisecond, 2
	})
	start := time.Now()
	err := s.Send(t.Context(), testMessage())
	if !errors.Is(err, mail.ErrTemporary) {
		t.Errorf("Send = %v, want ErrTemporary", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Send took %s", took)
	}
}

// stalledServer accepts connections and never answers; it returns the port.
func stalledServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSMTPConfigValidate: every problem is reported at once; defaults fill
// the rest.
func TestSMTPConfigValidate(t *testing.T) {
	t.Parallel()
	ok := mail.SMTPConfig{Host: "smtp.example.com", From: "jit@pipeline.example"}
	tests := []struct {
		name string
		edit func(*mail.SMTPConfig)
		want []string // substrings of the error, in order; none means valid
	}{
		{"minimal", func(*mail.SMTPConfig) {}, nil},
		{"none_on_localhost", func(c *mail.SMTPConfig) { c.Host, c.Security = "localhost", mail.SecurityNone }, nil},
		{"none_on_ipv6_loopback", func(c *mail.SMTPConfig) { c.Host, c.Security = "::1", mail.SecurityNone }, nil},
		{"none_on_127_8", func(c *mail.SMTPConfig) { c.Host, c.Security = "127.0.0.2", mail.SecurityNone }, nil},
		{"tls_with_auth", func(c *mail.SMTPConfig) {
			c.Security, c.Port, c.Username, c.Password = mail.SecurityTLS, 465, "u", "p"
		}, nil},
		{"host_with_port", func(c *mail.SMTPConfig) { c.Host = "smtp.example.com:587" }, []string{"must not include a port"}},
		{"bracketed_ipv6", func(c *mail.SMTPConfig) { c.Host, c.Security = "[::1]", mail.SecurityNone }, nil},
		{"none_on_remote_host", func(c *mail.SMTPConfig) { c.Security = mail.SecurityNone }, []string{`only for a loopback host, not "smtp.example.com"`}},
		{"none_on_lan_ip", func(c *mail.SMTPConfig) { c.Host, c.Security = "10.0.0.1", mail.SecurityNone }, []string{"only for a loopback host"}},
		{"none_on_name_resolving_to_loopback_is_not_trusted", func(c *mail.SMTPConfig) {
			c.Host, c.Security = "localhost.evil.example", mail.SecurityNone
		}, []string{"only for a loopback host"}},
		{"everything_wrong", func(c *mail.SMTPConfig) {
			*c = mail.SMTPConfig{
				Host: "smtp example", Port: 70000, Security: "ssl", Username: "u\r\n",
				From: "nobody", HeloName: "two words", Timeout: -1, Attempts: -1, Backoff: -1,
				PerRecipient: mail.RateLimit{Messages: -1},
			}
		}, []string{
			"host", "port 70000", `security "ssl"`, "username", `from "nobody"`, "helo name",
			"timeout", "attempts", "backoff", "per-recipient",
		}},
		{"missing", func(c *mail.SMTPConfig) { *c = mail.SMTPConfig{Password: "p"} }, []string{
			"host is required", "password is set without a username", "from",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tc.edit(&cfg)
			err := cfg.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Validate = %v, want %d problems %q", err, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to mention %q", i, got[i], w)
				}
			}
			if _, err := mail.NewSMTP(cfg); (err == nil) != (len(tc.want) == 0) {
				t.Errorf("NewSMTP error = %v, Validate = %v", err, cfg.Validate())
			}
		})
	}
}

// TestSMTPConfigRedactsPassword: however the config or the sender is
// printed or logged, the password is not.
func TestSMTPConfigRedactsPassword(t *testing.T) {
	t.Parallel()
	cfg := mail.SMTPConfig{
		Host: "smtp.example.com", Username: testUser, Password: testPassword,
		From: "jit@pipeline.example",
	}
	s, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("config", slog.Any("smtp", cfg), slog.Any("sender", s))
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", cfg),
		"%+v":        fmt.Sprintf("%+v", cfg),
		"%#v":        fmt.Sprintf("%#v", cfg),
		"String":     cfg.String(),
		"&%v":        fmt.Sprintf("%v", &cfg),
		"sender %v":  fmt.Sprintf("%v", s),
		"sender %+v": fmt.Sprintf("%+v", s),
		"slog":       logs.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, testPassword) {
			t.Errorf("%s shows the password: %s", how, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s does not say the password is redacted: %s", how, out)
		}
		if !strings.Contains(out, testUser) {
			t.Errorf("%s lacks the username: %s", how, out)
		}
	}
}
