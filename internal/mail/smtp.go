package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/emailaddr"
)

// Security values of SMTPConfig.
const (
	// SecuritySTARTTLS upgrades a plain connection (port 587) with STARTTLS
	// and fails if the server does not offer it: never a plaintext fallback.
	SecuritySTARTTLS = "starttls"
	// SecurityTLS is implicit TLS from the first byte (port 465).
	SecurityTLS = "tls"
	// SecurityNone is plaintext, allowed only to a loopback host (the local
	// mailbox).
	SecurityNone = "none"
)

// Defaults of SMTPConfig.
const (
	DefaultSMTPTimeout  = 30 * time.Second
	DefaultSMTPAttempts = 3
	DefaultSMTPBackoff  = time.Second
	DefaultPerRecipient = 20
	DefaultPerInterval  = time.Hour
)

// RateLimit is at most Messages per Interval.
type RateLimit struct {
	Messages int
	Interval time.Duration
}

// SMTPConfig configures the SMTP sender. Zero values take the defaults
// noted; Validate reports what no default can fix.
//
// In production the Password comes from Secret Manager (the deployment
// wiring reads it), never from a plain-text environment variable. It is
// redacted whenever the config is printed or logged.
type SMTPConfig struct {
	// Host is the submission server, a name or an IP literal.
	Host string
	// Port defaults to 587 (starttls), 465 (tls) or 25 (none).
	Port int
	// Security is SecuritySTARTTLS (the default), SecurityTLS or
	// SecurityNone (loopback Host only).
	Security string
	// Username, when set, makes the sender AUTH (PLAIN, else LOGIN) after
	// the connection is encrypted; an unencrypted AUTH is refused unless the
	// Host is loopback.
	Username string
	Password string
	// From is the envelope sender (MAIL FROM) and the From header of
	// messages that name none.
	From string
	// HeloName is the EHLO name; empty means the machine's host name.
	HeloName string
	// Timeout bounds one attempt, connection to QUIT (default 30s).
	Timeout time.Duration
	// TLSConfig is cloned for the connection; nil means the system roots.
	// Tests set RootCAs. ServerName defaults to Host.
	TLSConfig *tls.Config
	// Attempts is how often one Send tries on a temporary failure
	// (default 3); Backoff is the wait before the second attempt, doubled
	// before each later one (default 1s).
	Attempts int
	Backoff  time.Duration
	// PerRecipient caps the messages to one address (To or Cc) within a
	// sliding interval (default 20 per hour), so a loop upstream cannot
	// flood a mailbox. It is per SMTP value, so per instance, not global.
	PerRecipient RateLimit
	// Clock tells the time for the rate limit and waits the backoff
	// (default the system clock).
	Clock clock.Clock
	// Logger gets one line per delivery and per failed attempt (default:
	// discarded). Passwords and message bodies are never logged.
	Logger *slog.Logger
}

// Validate reports every problem with the config at once.
func (c SMTPConfig) Validate() error {
	var errs []error
	switch {
	case c.Host == "":
		errs = append(errs, errors.New("smtp host is required"))
	case strings.ContainsFunc(c.Host, isSpaceOrControl) || strings.ContainsAny(c.Host, "/@"):
		errs = append(errs, fmt.Errorf("smtp host %q is not a host name or IP address", c.Host))
	case strings.Contains(c.Host, ":") && net.ParseIP(strings.Trim(c.Host, "[]")) == nil:
		errs = append(errs, fmt.Errorf("smtp host %q must not include a port (set Port)", c.Host))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp port %d is out of range", c.Port))
	}
	switch c.Security {
	case "", SecuritySTARTTLS, SecurityTLS:
	case SecurityNone:
		if c.Host != "" && !isLoopback(c.Host) {
			errs = append(errs, fmt.Errorf("smtp security %q is allowed only for a loopback host, not %q", SecurityNone, c.Host))
		}
	default:
		errs = append(errs, fmt.Errorf("smtp security %q is not one of %q, %q, %q", c.Security, SecuritySTARTTLS, SecurityTLS, SecurityNone))
	}
	if strings.ContainsFunc(c.Username, isControl) {
		errs = append(errs, errors.New("smtp username must not contain control characters"))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("smtp password is set without a username"))
	}
	if !emailaddr.Valid(c.From) {
		errs = append(errs, fmt.Errorf("smtp from %q is not an email address", c.From))
	}
	if strings.ContainsFunc(c.HeloName, isSpaceOrControl) {
		errs = append(errs, fmt.Errorf("smtp helo name %q must be one word", c.HeloName))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("smtp timeout %s is negative", c.Timeout))
	}
	if c.Attempts < 0 {
		errs = append(errs, fmt.Errorf("smtp attempts %d is negative", c.Attempts))
	}
	if c.Backoff < 0 {
		errs = append(errs, fmt.Errorf("smtp backoff %s is negative", c.Backoff))
	}
	if c.PerRecipient.Messages < 0 || c.PerRecipient.Interval < 0 {
		errs = append(errs, fmt.Errorf("smtp per-recipient limit %d per %s is negative", c.PerRecipient.Messages, c.PerRecipient.Interval))
	}
	return errors.Join(errs...)
}

// String prints the config with the password redacted.
func (c SMTPConfig) String() string {
	return fmt.Sprintf("SMTPConfig{Host:%s Port:%d Security:%s Username:%s Password:%s From:%s HeloName:%s Timeout:%s Attempts:%d Backoff:%s PerRecipient:%d/%s}",
		c.Host, c.Port, c.Security, c.Username, redact(c.Password), c.From, c.HeloName,
		c.Timeout, c.Attempts, c.Backoff, c.PerRecipient.Messages, c.PerRecipient.Interval)
}

// GoString keeps %#v from printing the password too.
func (c SMTPConfig) GoString() string { return c.String() }

// LogValue logs the config with the password redacted.
func (c SMTPConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.String("security", c.Security),
		slog.String("username", c.Username),
		slog.String("password", redact(c.Password)),
		slog.String("from", c.From),
		slog.String("helo_name", c.HeloName),
		slog.Duration("timeout", c.Timeout),
		slog.Int("attempts", c.Attempts),
		slog.Duration("backoff", c.Backoff),
		slog.Int("per_recipient_messages", c.PerRecipient.Messages),
		slog.Duration("per_recipient_interval", c.PerRecipient.Interval),
	)
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "[REDACTED]"
}

// withDefaults fills the zero values.
func (c SMTPConfig) withDefaults() SMTPConfig {
	if c.Security == "" {
		c.Security = SecuritySTARTTLS
	}
	if c.Port == 0 {
		c.Port = map[string]int{SecuritySTARTTLS: 587, SecurityTLS: 465, SecurityNone: 25}[c.Security]
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultSMTPTimeout
	}
	if c.Attempts == 0 {
		c.Attempts = DefaultSMTPAttempts
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultSMTPBackoff
	}
	if c.PerRecipient.Messages == 0 {
		c.PerRecipient.Messages = DefaultPerRecipient
	}
	if c.PerRecipient.Interval == 0 {
		c.PerRecipient.Interval = DefaultPerInterval
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	tc := &tls.Config{}
	if c.TLSConfig != nil {
		tc = c.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = strings.Trim(c.Host, "[]")
	}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	c.TLSConfig = tc
	return c
}

// SMTP is a Sender that submits each message over its own SMTP connection.
// It is safe for concurrent use.
type SMTP struct {
	cfg   SMTPConfig
	limit *limiter
}

var _ Sender = (*SMTP)(nil)

// NewSMTP validates cfg and returns the sender; it does not connect.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid smtp config: %w", err)
	}
	cfg = cfg.withDefaults()
	return &SMTP{
		cfg:   cfg,
		limit: newLimiter(cfg.PerRecipient),
	}, nil
}

// String keeps %v of the sender (whose config field fmt would print raw)
// from showing the password.
func (s *SMTP) String() string { return "SMTP(" + s.cfg.String() + ")" }

// LogValue logs the sender's config, password redacted.
func (s *SMTP) LogValue() slog.Value { return s.cfg.LogValue() }

func (s *SMTP) addr() string {
	return net.JoinHostPort(strings.Trim(s.cfg.Host, "[]"), strconv.Itoa(s.cfg.Port))
}

// Send submits m, retrying temporary failures up to Attempts times. Every
// error wraps ErrTemporary or ErrPermanent. A message is refused before any
// connection when it is invalid, would inject a header, or would take a
// recipient over the rate limit (ErrTemporary: redeliver later).
//
// SMTP cannot tell a reply lost after the final "." from a refusal, so a
// retry may deliver twice; the deterministic Message-ID lets readers'
// clients fold the copies.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrPermanent)
	}
	if err := errors.Join(m.Validate(), checkHeaders(m)); err != nil {
		return fmt.Errorf("%w: invalid message %q: %w", ErrPermanent, m.MessageID, err)
	}
	msg, err := s.build(m)
	if err != nil {
		return fmt.Errorf("%w: composing message %q: %w", ErrPermanent, m.MessageID, err)
	}
	log := s.cfg.Logger.With(
		slog.String("message_id", m.MessageID),
		slog.Int("recipients", len(m.To)+len(m.Cc)),
		slog.String("server", s.addr()),
	)

	release, err := s.limit.reserve(recipients(m), s.cfg.Clock.Now())
	if err != nil {
		log.WarnContext(ctx, "mail not sent: recipient rate limit",
			slog.String("error", err.Error()))
		return fmt.Errorf("%w: message %q: %w", ErrTemporary, m.MessageID, err)
	}

	for attempt := 1; ; attempt++ {
		err := s.attempt(ctx, msg)
		if err == nil {
			log.InfoContext(ctx, "mail sent",
				slog.Int("attempt", attempt))
			return nil
		}
		if ctx.Err() != nil {
			release()
			return fmt.Errorf("%w: sending message %q: %w", ErrTemporary, m.MessageID, context.Cause(ctx))
		}
		kind := classify(err)
		log.WarnContext(ctx, "mail attempt failed",
			slog.Int("attempt", attempt),
			slog.Int("attempts", s.cfg.Attempts),
			slog.Bool("temporary", errors.Is(kind, ErrTemporary)),
			slog.String("error", err.Error()))
		if errors.Is(kind, ErrPermanent) || attempt >= s.cfg.Attempts {
			release()
			return fmt.Errorf("%w: sending message %q to %s (attempt %d of %d): %w",
				kind, m.MessageID, s.addr(), attempt, s.cfg.Attempts, err)
		}
		// Doubling stops at 2^10 times the first wait, well before overflow.
		if err := s.cfg.Clock.Sleep(ctx, s.cfg.Backoff<<min(attempt-1, 10)); err != nil {
			release()
			return fmt.Errorf("%w: sending message %q: %w", ErrTemporary, m.MessageID, context.Cause(ctx))
		}
	}
}

// attempt runs one SMTP conversation: connect, (STARTTLS), (AUTH), MAIL,
// RCPT, DATA, QUIT.
func (s *SMTP) attempt(ctx context.Context, msg *gomail.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	// Closing the socket when ctx ends is what makes a stalled conversation
	// return promptly: go-mail bounds only the dial by the context. It also
	// closes what go-mail leaves open when EHLO, STARTTLS or AUTH fails.
	defer cancel()

	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = conn.Close() })
		if s.cfg.Security != SecurityTLS {
			return conn, nil
		}
		// go-mail sees the connection as encrypted only if it is a *tls.Conn.
		tc := tls.Client(conn, s.cfg.TLSConfig)
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, err
		}
		return tc, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithDialContextFunc(dial),
		gomail.WithTLSConfig(s.cfg.TLSConfig),
	}
	switch s.cfg.Security {
	case SecuritySTARTTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case SecurityTLS:
		opts = append(opts, gomail.WithSSL())
	case SecurityNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.HeloName != "" {
		opts = append(opts, gomail.WithHELO(s.cfg.HeloName))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(&plainOrLogin{
			username: s.cfg.Username,
			password: s.cfg.Password,
			host:     strings.Trim(s.cfg.Host, "[]"),
			loopback: isLoopback(s.cfg.Host),
		}))
	}
	client, err := gomail.NewClient(strings.Trim(s.cfg.Host, "[]"), opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := client.SendWithSMTPClient(sc, msg); err != nil && !msg.IsDelivered() {
		return err //nolint:wrapcheck // a *SendError that already names the step
	}
	// Delivered: a failing RSET or QUIT afterwards must not cause a retry.
	_ = client.CloseWithSMTPClient(sc)
	return nil
}

// classify says whether a failed attempt is worth retrying: SMTP replies
// by their code, network failures are temporary, the rest (certificates,
// TLS mismatches, no STARTTLS, no AUTH mechanism) is configuration that a
// retry won't fix.
func classify(err error) error {
	switch code := replyCode(err); {
	case code >= 500:
		return ErrPermanent
	case code >= 400:
		return ErrTemporary
	}
	var cv *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	if errors.As(err, &cv) || errors.As(err, &unknownCA) || errors.As(err, &hostname) {
		return ErrPermanent
	}
	// A step of the transaction (MAIL to QUIT) that failed without a reply
	// failed on the socket; go-mail's SendError does not unwrap to say so.
	var se *gomail.SendError
	if errors.As(err, &se) && !slices.Contains(localReasons, se.Reason) {
		return ErrTemporary
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTemporary
	}
	return ErrPermanent
}

// localReasons are the SendError reasons that are not about the
// connection (Send validated the message, so they are not expected).
var localReasons = []gomail.SendErrReason{gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded}

// replyCode is the SMTP reply code in err, 0 if there is none.
func replyCode(err error) int {
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() != 0 {
		return se.ErrorCode()
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// build composes the MIME message: multipart/alternative, text then HTML,
// UTF-8, quoted-printable.
func (s *SMTP) build(m *Message) (*gomail.Msg, error) {
	g := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	from := m.From
	if from == "" {
		from = s.cfg.From
	}
	var errs []error
	errs = append(errs, g.EnvelopeFrom(s.cfg.From), g.From(from), g.To(m.To...))
	if len(m.Cc) > 0 {
		errs = append(errs, g.Cc(m.Cc...))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	g.Subject(m.Subject)
	g.SetMessageIDWithValue(m.MessageID)
	if m.InReplyTo != "" {
		g.SetGenHeader(gomail.HeaderInReplyTo, "<"+m.InReplyTo+">")
	}
	if len(m.References) > 0 {
		refs := make([]string, len(m.References))
		for i, r := range m.References {
			refs[i] = "<" + r + ">"
		}
		// One value: go-mail joins several with ", ", References wants spaces.
		g.SetGenHeader(gomail.HeaderReferences, strings.Join(refs, " "))
	}
	date := m.Date
	if date.IsZero() {
		date = s.cfg.Clock.Now()
	}
	g.SetDateWithValue(date)
	// RFC 3834: a machine wrote this, auto-responders must not answer;
	// the second header is Exchange's spelling of the same request.
	g.SetGenHeader("Auto-Submitted", "auto-generated")
	g.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	g.SetBodyString(gomail.TypeTextPlain, m.Text)
	g.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return g, nil
}

// checkHeaders refuses what Message.Validate leaves to the sender: line
// breaks (header injection) in addresses and message ids, and ids that are
// not id-left "@" id-right.
func checkHeaders(m *Message) error {
	var errs []error
	for _, a := range slices.Concat([]string{m.From}, m.To, m.Cc) {
		if strings.ContainsAny(a, "\r\n") {
			errs = append(errs, fmt.Errorf("address %q contains a line break", a))
		}
	}
	var ids []string
	for _, id := range []string{m.MessageID, m.InReplyTo} {
		if id != "" { // an empty MessageID is Validate's to report
			ids = append(ids, id)
		}
	}
	for _, id := range m.References {
		if id == "" {
			errs = append(errs, errors.New("references: empty message id"))
			continue
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		switch {
		case strings.ContainsFunc(id, isSpaceOrControl) || strings.ContainsAny(id, "<>") ||
			strings.ContainsFunc(id, func(r rune) bool { return r > '~' }):
			errs = append(errs, fmt.Errorf("message id %q must be printable ASCII without spaces or angle brackets", id))
		case strings.Count(id, "@") != 1 || strings.HasPrefix(id, "@") || strings.HasSuffix(id, "@"):
			errs = append(errs, fmt.Errorf("message id %q is not of the form left@right", id))
		}
	}
	return errors.Join(errs...)
}

// recipients are the rate-limited keys of m, each address once.
func recipients(m *Message) []string {
	var keys []string
	for _, a := range slices.Concat(m.To, m.Cc) {
		if k := emailaddr.Key(a); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// plainOrLogin is AUTH PLAIN if the server offers it, else LOGIN, and
// refuses to send credentials in the clear to anything but loopback.
type plainOrLogin struct {
	username, password, host string
	loopback                 bool
	inner                    gosmtp.Auth
}

func (a *plainOrLogin) Start(si *gosmtp.ServerInfo) (string, []byte, error) {
	if !si.TLS && !a.loopback {
		return "", nil, errors.New("refusing AUTH over an unencrypted connection")
	}
	switch {
	case slices.Contains(si.Auth, "PLAIN"):
		a.inner = gosmtp.PlainAuth("", a.username, a.password, a.host, true)
	case slices.Contains(si.Auth, "LOGIN"):
		a.inner = gosmtp.LoginAuth(a.username, a.password, a.host, true)
	default:
		return "", nil, fmt.Errorf("server offers neither AUTH PLAIN nor LOGIN (offers %q)", si.Auth)
	}
	return a.inner.Start(si) //nolint:wrapcheck // go-mail wraps it
}

func (a *plainOrLogin) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.inner.Next(fromServer, more) //nolint:wrapcheck // go-mail wraps it
}

// limiter counts messages per recipient in a sliding window.
type limiter struct {
	max int
	per time.Duration

	mu        sync.Mutex
	sent      map[string][]time.Time // oldest first, within the window
	lastSweep time.Time
}

func newLimiter(l RateLimit) *limiter {
	return &limiter{max: l.Messages, per: l.Interval, sent: map[string][]time.Time{}}
}

// reserve counts one message to every key at now, or none if any key is at
// its limit. release takes the count back (the message was not sent).
func (l *limiter) reserve(keys []string, now time.Time) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-l.per)
	// Forget idle recipients once per window, so the map stays small.
	if now.Sub(l.lastSweep) >= l.per {
		for k := range l.sent {
			l.prune(k, cutoff)
		}
		l.lastSweep = now
	}
	for _, k := range keys {
		if l.prune(k, cutoff); len(l.sent[k]) >= l.max {
			return nil, fmt.Errorf("recipient %s reached the limit of %d messages per %s", k, l.max, l.per)
		}
	}
	for _, k := range keys {
		l.sent[k] = append(l.sent[k], now)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, k := range keys {
				ts := l.sent[k]
				if i := slices.Index(ts, now); i >= 0 {
					l.sent[k] = slices.Delete(ts, i, i+1)
				}
			}
		})
	}, nil
}

func (l *limiter) prune(k string, cutoff time.Time) {
	ts := l.sent[k]
	i := 0
	for i < len(ts) && !ts[i].After(cutoff) {
		i++
	}
	if i == len(ts) {
		delete(l.sent, k)
		return
	}
	l.sent[k] = ts[i:]
}

// isLoopback: "localhost" or a loopback IP literal. Names are not resolved:
// the check must not depend on DNS.
func isLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
