// Package mailbox is the local mail server of `jit local`: a real SMTP
// server on loopback that keeps every message it accepts, and a page that
// shows them. The pipeline's SMTP sender (internal/mail) submits to it over
// a socket exactly as it submits to a real submission server on Google
// Cloud, so the notifications are exercised end to end without any mail
// leaving the machine.
//
// The server accepts submission without TLS and without AUTH. That is safe
// only because it listens on a loopback address (Config.Validate refuses
// any other): every client is a process of this machine, which can read
// the data directory anyway. It refuses connections that open with an HTTP
// request line, so a web page cannot plant mail through the browser
// (cross-protocol request to the SMTP port).
//
// Each accepted message is one .eml file under Config.Dir: the raw RFC 5322
// bytes as received, preceded by the Return-Path and Received trace fields
// a delivering server adds (RFC 5321 §4.4), written atomically and fsync'd.
// File names sort by arrival. The index of parsed messages is rebuilt from
// the directory at Open, so the mailbox survives restarts.
//
// Mounting (done by internal/local/pipeline, not here): pipeline.Start
// opens the mailbox with Dir = filepath.Join(DataDir, "mail"), hands
// Mailbox.Addr to the SMTP sender as its submission server, mounts the
// Mailbox (an http.Handler) at GET /local/mail on the loopback HTTP server
// behind the same Host check as the other local pages, and closes it with
// the pipeline:
//
//	mb, err := mailbox.Open(mailbox.Config{Dir: filepath.Join(cfg.DataDir, "mail"), Logger: log})
//	...
//	mux.Handle("GET /local/mail", mb)
package mailbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/durable"
)

// Defaults of Config.
const (
	DefaultAddr            = "127.0.0.1:0"
	DefaultDomain          = "localhost"
	DefaultMaxMessageBytes = 10 << 20
	// maxRecipients bounds RCPT TO per message (RFC 5321 §4.5.3.1.8
	// requires at least 100).
	maxRecipients = 100
	// ioTimeout drops a client that stops talking mid-command.
	ioTimeout = time.Minute
)

// Config configures the mailbox.
type Config struct {
	// Dir holds the .eml files; it is created if missing. Put it under
	// the data directory (DataDir/mail).
	Dir string
	// Addr is the SMTP listen address, default "127.0.0.1:0" (any free
	// port). It must be a loopback address: the server has no TLS and
	// no AUTH.
	Addr string
	// Domain is the name the server greets with and writes in the
	// Received field, default "localhost".
	Domain string
	// MaxMessageBytes bounds one message; larger ones are refused with
	// 552. Zero means DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// Clock stamps arrivals; nil means real time.
	Clock clock.Clock
	// Logger receives JSON logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem with the configuration at once. Empty
// Addr, Domain and MaxMessageBytes mean their defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir is required"))
	}
	if c.Addr != "" {
		if err := checkLoopback(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
		}
	}
	if c.Domain != "" {
		if err := checkDomain(c.Domain); err != nil {
			errs = append(errs, fmt.Errorf("domain %q: %w", c.Domain, err))
		}
	}
	if c.MaxMessageBytes < 0 {
		errs = append(errs, fmt.Errorf("max message bytes %d must not be negative", c.MaxMessageBytes))
	}
	return errors.Join(errs...)
}

// checkLoopback accepts host:port where host is "localhost" or a loopback
// IP literal. An empty host (":25") would listen on every interface.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port: %w", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("must be a loopback address (127.0.0.1, [::1] or localhost): the mail server has no TLS and no AUTH")
	}
	return nil
}

// checkDomain accepts a host name of letters, digits, dots and inner
// hyphens; a single label ("localhost") is fine.
func checkDomain(d string) error {
	if len(d) > 253 {
		return errors.New("longer than 253 bytes")
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q must be 1 to 63 characters, not starting or ending with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("label %q holds %q", l, c)
			}
		}
	}
	return nil
}

// Mailbox is a running local mail server and its stored messages.
type Mailbox struct {
	dir    string
	domain string
	clock  clock.Clock
	log    *slog.Logger
	server *smtp.Server
	lis    net.Listener
	addr   string
	served chan struct{}

	mu       sync.Mutex
	messages []Message // sorted by ID, which is arrival order
	seq      uint64    // of the last stored message
	closed   bool
	storing  sync.WaitGroup
}

// Open validates cfg, loads the messages already in cfg.Dir and starts the
// SMTP server.
func Open(cfg Config) (*Mailbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid mailbox config: %w", err)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Mailbox{dir: cfg.Dir, domain: cfg.Domain, clock: cfg.Clock, log: cfg.Logger, served: make(chan struct{})}
	if err := m.load(); err != nil {
		return nil, err
	}

	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", cfg.Addr, err)
	}
	// "localhost" is resolved by the system: check what it gave.
	if a, ok := lis.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		lis.Close()
		return nil, fmt.Errorf("%s resolved to %s, which is not a loopback address", cfg.Addr, lis.Addr())
	}
	m.lis, m.addr = lis, lis.Addr().String()

	s := smtp.NewServer(smtp.BackendFunc(m.newSession))
	s.Domain = cfg.Domain
	s.MaxMessageBytes = cfg.MaxMessageBytes
	s.MaxRecipients = maxRecipients
	s.ReadTimeout, s.WriteTimeout = ioTimeout, ioTimeout
	s.ErrorLog = errorLog{m.log}
	m.server = s
	go func() {
		defer close(m.served)
		if err := s.Serve(guardListener{lis}); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			m.log.Error("mail server stopped", "error", err)
		}
	}()
	m.log.Info("mailbox listening", "smtp_addr", m.addr, "dir", m.dir, "messages", len(m.messages))
	return m, nil
}

// Addr is the SMTP server's host:port.
func (m *Mailbox) Addr() string { return m.addr }

// Close stops the server, closing open connections, and waits for
// messages being stored to reach the disk.
func (m *Mailbox) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	err := m.server.Close()
	_ = m.lis.Close() // in case Serve had not registered it yet; else already closed
	<-m.served
	m.storing.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("failed to close the mail server: %w", err)
	}
	return nil
}

// Messages returns the stored messages, oldest first.
func (m *Mailbox) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Message, len(m.messages))
	for i, msg := range m.messages {
		out[i] = msg.clone()
	}
	return out
}

const ext = ".eml"

// load reads every stored message of the directory into the index, and
// removes temporary files a crash left behind.
func (m *Mailbox) load() error {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return fmt.Errorf("failed to create the mail directory: %w", err)
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return fmt.Errorf("failed to read the mail directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			_ = os.Remove(filepath.Join(m.dir, name)) // an interrupted write: never acknowledged
			continue
		}
		seq, at, ok := parseName(name)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(m.dir, name))
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", name, err)
		}
		m.messages = append(m.messages, Parse(name, at, raw))
		m.seq = max(m.seq, seq)
	}
	slices.SortFunc(m.messages, func(a, b Message) int { return strings.Compare(a.ID, b.ID) })
	return nil
}

// fileName is "<sequence>-<arrival>.eml": the zero-padded sequence makes
// names sort by arrival even if the clock steps back between restarts.
func fileName(seq uint64, at time.Time) string {
	return fmt.Sprintf("%012d-%s%s", seq, at.UTC().Format(nameTime), ext)
}

const nameTime = "20060102T150405.000000000Z"

func parseName(name string) (seq uint64, at time.Time, ok bool) {
	base, found := strings.CutSuffix(name, ext)
	if !found {
		return 0, time.Time{}, false
	}
	s, t, found := strings.Cut(base, "-")
	if !found || len(s) != 12 {
		return 0, time.Time{}, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, time.Time{}, false
	}
	at, err = time.Parse(nameTime, t)
	if err != nil {
		return 0, time.Time{}, false
	}
	return seq, at, true
}

// store writes one accepted message and adds it to the index. The file is
// on disk, synced, before the client hears 250.
func (m *Mailbox) store(e envelope, data []byte) (string, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return "", errShuttingDown
	}
	m.seq++
	seq, at := m.seq, m.clock.Now()
	m.storing.Add(1)
	m.mu.Unlock()
	defer m.storing.Done()

	name := fileName(seq, at)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Return-Path: <%s>\r\n", e.from)
	fmt.Fprintf(&buf, "Received: from %s (%s)\r\n\tby %s with ESMTP id %012d", e.helo, e.remote, m.domain, seq)
	if len(e.to) == 1 {
		fmt.Fprintf(&buf, "\r\n\tfor <%s>", e.to[0])
	}
	fmt.Fprintf(&buf, "; %s\r\n", at.Format(time.RFC1123Z))
	buf.Write(data)
	raw := buf.Bytes()
	if err := durable.WriteFile(filepath.Join(m.dir, name), raw); err != nil {
		return "", fmt.Errorf("failed to store message %s: %w", name, err)
	}
	msg := Parse(name, at, raw)

	m.mu.Lock()
	i, _ := slices.BinarySearchFunc(m.messages, name, func(x Message, id string) int { return strings.Compare(x.ID, id) })
	m.messages = slices.Insert(m.messages, i, msg)
	m.mu.Unlock()
	m.log.Info("mail received",
		"id", name,
		"envelope_from", e.from,
		"envelope_to", e.to,
		"message_id", msg.MessageID,
		"subject", msg.Subject,
		"bytes", len(data))
	return name, nil
}

var (
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Mailbox is shutting down"}
	errStore        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Failed to store the message"}
)

// envelope is what the SMTP commands of one transaction said.
type envelope struct {
	helo, remote string
	from         string
	to           []string
}

type session struct {
	m   *Mailbox
	env envelope
}

func (m *Mailbox) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{m: m, env: envelope{helo: sanitize(c.Hostname()), remote: c.Conn().RemoteAddr().String()}}, nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.env.from, s.env.to = sanitize(from), nil
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.env.to = append(s.env.to, sanitize(to))
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.m.log.Warn("mail refused",
				"envelope_from", s.env.from,
				"code", se.Code,
				"reason", se.Message)
			return se // go-smtp answers with an *SMTPError's own code (552 for size)
		}
		return fmt.Errorf("failed to read the message: %w", err)
	}
	if _, err := s.m.store(s.env, data); err != nil {
		if errors.Is(err, errShuttingDown) {
			return errShuttingDown
		}
		s.m.log.Error("failed to store mail", "error", err)
		return errStore
	}
	return nil
}

func (s *session) Reset()        { s.env.from, s.env.to = "", nil }
func (s *session) Logout() error { return nil }

// sanitize keeps client-supplied envelope strings from breaking the trace
// fields: no control characters, no angle brackets, bounded length.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '<' || r == '>' {
			return -1
		}
		return r
	}, s)
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "")
	}
	return s
}

// errorLog turns go-smtp's Printf-style error log into slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) {
	l.log.Warn("mail server", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (l errorLog) Println(v ...any) {
	l.log.Warn("mail server", "detail", strings.TrimSpace(fmt.Sprintln(v...)))
}

// guardListener refuses connections whose first line is an HTTP request
// line: a browser tricked into sending a form to the SMTP port would
// otherwise have its body read as SMTP commands.
type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err //nolint:wrapcheck // the server inspects net errors
	}
	return &guardConn{Conn: c}, nil
}

type guardConn struct {
	net.Conn
	checked bool
	pending []byte
	err     error // met while reading the first line, returned after pending
}

// maxFirstLine is read at most before the first line is judged; SMTP
// command lines are at most 512 bytes (RFC 5321 §4.5.3.1.4).
const maxFirstLine = 1024

var errHTTPOnSMTP = errors.New("refused an HTTP request on the SMTP port")

func (c *guardConn) Read(p []byte) (int, error) {
	if !c.checked {
		c.checked = true
		buf := make([]byte, 0, maxFirstLine)
		for len(buf) < cap(buf) && bytes.IndexByte(buf, '\n') < 0 {
			n, err := c.Conn.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err != nil {
				c.err = err
				break
			}
		}
		line := buf
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		if isHTTPRequestLine(line) {
			c.Conn.Close() //nolint:staticcheck // QF1008: the raw connection's Close, whatever the wrapper does
			return 0, errHTTPOnSMTP
		}
		c.pending = buf
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.err != nil {
		err := c.err
		c.err = nil
		return 0, err
	}
	return c.Conn.Read(p) //nolint:wrapcheck // a net.Conn's own errors
}

// isHTTPRequestLine reports whether line looks like "METHOD target HTTP/x".
func isHTTPRequestLine(line []byte) bool {
	f := strings.Fields(string(line))
	return len(f) == 3 && strings.HasPrefix(f[2], "HTTP/")
}
