package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The in-process SMTP server the tests send to: go-smtp on 127.0.0.1:0,
// recording what it saw, failing on request.

const (
	testUser     = "jit-mailer"
	testPassword = "s3cret-Passw0rd-never-logged"
)

// envelope is one message the server accepted.
type envelope struct {
	From string
	To   []string
	Raw  []byte
}

// failure makes the server fail a command: answer Code, or drop the
// connection when Code is 0.
type failure struct {
	At    string // "MAIL", "RCPT" or "DATA"
	Code  int
	Times int // how many times; -1 always
}

type backend struct {
	mu       sync.Mutex
	fail     []failure
	conns    int // TCP connections accepted
	auths    int // AUTH attempts
	mails    int // MAIL commands
	datas    int // DATA bodies received
	accepted []envelope
}

// counts is what the server saw, for comparison.
type counts struct {
	Conns, Auths, Mails, Datas, Accepted int
}

func (b *backend) counts() counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	return counts{b.conns, b.auths, b.mails, b.datas, len(b.accepted)}
}

func (b *backend) envelopes() []envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]envelope(nil), b.accepted...)
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, c: c}, nil
}

// check applies a pending failure for the command at, if any.
func (b *backend) check(at string, c *smtp.Conn) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, f := range b.fail {
		if f.At != at || f.Times == 0 {
			continue
		}
		if f.Times > 0 {
			b.fail[i].Times--
		}
		if f.Code == 0 {
			_ = c.Conn().Close()
			return errors.New("dropped")
		}
		return &smtp.SMTPError{
			Code:         f.Code,
			EnhancedCode: smtp.EnhancedCode{f.Code / 100, 0, 0},
			Message:      "told to fail with " + strconv.Itoa(f.Code),
		}
	}
	return nil
}

type session struct {
	b    *backend
	c    *smtp.Conn
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	s.b.mu.Lock()
	s.b.auths++
	s.b.mu.Unlock()
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != testUser || pass != testPassword {
			return smtp.ErrAuthFailed
		}
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.b.mu.Lock()
	s.b.mails++
	s.b.mu.Unlock()
	if err := s.b.check("MAIL", s.c); err != nil {
		return err
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.b.check("RCPT", s.c); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.datas++
	s.b.mu.Unlock()
	if err := s.b.check("DATA", s.c); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.accepted = append(s.b.accepted, envelope{From: s.from, To: s.to, Raw: raw})
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// serverMode is how the test server speaks.
type serverMode int

const (
	modeSTARTTLS    serverMode = iota // plain, offers STARTTLS
	modeImplicitTLS                   // TLS from the first byte
	modePlain                         // no TLS at all, AUTH offered in the clear
)

// startServer runs a server until the test ends and returns its backend
// and port.
func startServer(t *testing.T, mode serverMode, fail ...failure) (*backend, int) {
	t.Helper()
	be := &backend{fail: fail}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: ln, b: be}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	switch mode {
	case modeSTARTTLS:
		srv.TLSConfig = serverTLS(t)
	case modeImplicitTLS:
		ln = tls.NewListener(ln, serverTLS(t))
	case modePlain:
		srv.AllowInsecureAuth = true
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return be, ln.Addr().(*net.TCPAddr).Port
}

// countingListener counts connections (go-smtp starts a new session after
// STARTTLS, so sessions are not connections).
type countingListener struct {
	net.Listener
	b *backend
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.b.mu.Lock()
		l.b.conns++
		l.b.mu.Unlock()
	}
	return c, err
}

// testCert is a self-signed certificate for 127.0.0.1, made once.
var testCert = sync.OnceValues(func() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jit test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
})

func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// clientTLS trusts the test certificate only.
func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
