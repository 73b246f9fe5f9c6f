package mailbox_test

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/mailbox"
)

// open starts a mailbox on a fresh directory (or cfg.Dir) and closes it
// when the test ends.
func open(t *testing.T, cfg mailbox.Config) *mailbox.Mailbox {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "mail")
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(t.Output(), nil))
	mb, err := mailbox.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := mb.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return mb
}

// send submits raw over a real socket with the standard library's client.
func send(mb *mailbox.Mailbox, from string, to []string, raw string) error {
	return smtp.SendMail(mb.Addr(), nil, from, to, []byte(strings.ReplaceAll(raw, "\n", "\r\n")))
}

func mustSend(t *testing.T, mb *mailbox.Mailbox, from string, to []string, raw string) {
	t.Helper()
	if err := send(mb, from, to, raw); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
}

// approvalMail is what the pipeline's notifications look like: a
// multipart/alternative with a quoted-printable text part and a base64
// HTML part, an RFC 2047 subject and threading headers.
func approvalMail() string {
	htmlPart := `<p>Alice asks for <b>roles/owner</b> on <i>prod</i>.</p>
<p><a href="https://jit.example/approve?grant=g-1&amp;event=e-2">Review the request</a>
<a href="https://jit.example/approve?grant=g-1&amp;event=e-2">again</a>
<a href="mailto:help@example.com">help</a> <a href="javascript:alert(1)">x</a>
<a href="https://jit.example/grants/g-1">Grant</a></p>`
	b64 := base64.StdEncoding.EncodeToString([]byte(htmlPart))
	var lines []string
	for len(b64) > 76 {
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	lines = append(lines, b64)
	return `From: "JIT pipeline" <jit@pipeline.example>
To: "Bob Approver" <bob@example.com>, carol@example.com
Cc: Alice <alice@example.com>
Subject: =?UTF-8?B?` + base64.StdEncoding.EncodeToString([]byte("Approval needed: café ☕ roles/owner")) + `?=
Message-ID: <grant-g-1.e-2.abc@jit.pipeline>
In-Reply-To: <grant-g-1.e-1.abc@jit.pipeline>
References: <grant-g-1.e-0.abc@jit.pipeline>
 <grant-g-1.e-1.abc@jit.pipeline>
Date: Thu, 03 Dec 2026 13:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Alice asks for roles/owner on prod. Caf=C3=A9 =E2=98=95.
Review it: https://jit.example/approve?grant=3Dg-1&event=3De-2=
.
(The grant: https://jit.example/grants/g-1).
--b1
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: base64

` + strings.Join(lines, "\n") + `
--b1--
`
}

func TestDeliverAndParse(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{})
	before := time.Now()
	mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com", "carol@example.com", "alice@example.com"}, approvalMail())

	got := mb.Messages()
	if len(got) != 1 {
		t.Fatalf("got %d messages, want 1", len(got))
	}
	want := mailbox.Message{
		MessageID:  "grant-g-1.e-2.abc@jit.pipeline",
		InReplyTo:  "grant-g-1.e-1.abc@jit.pipeline",
		References: []string{"grant-g-1.e-0.abc@jit.pipeline", "grant-g-1.e-1.abc@jit.pipeline"},
		From:       "jit@pipeline.example",
		To:         []string{"bob@example.com", "carol@example.com"},
		Cc:         []string{"alice@example.com"},
		Subject:    "Approval needed: café ☕ roles/owner",
		Text: "Alice asks for roles/owner on prod. Café ☕.\n" +
			"Review it: https://jit.example/approve?grant=g-1&event=e-2.\n" +
			"(The grant: https://jit.example/grants/g-1).", // the CRLF before a boundary belongs to it
		Links: []string{
			"https://jit.example/approve?grant=g-1&event=e-2",
			"https://jit.example/grants/g-1",
		},
	}
	if diff := cmp.Diff(want, got[0], cmpopts.IgnoreFields(mailbox.Message{}, "ID", "Time", "HTML")); diff != "" {
		t.Errorf("message (-want, +got):\n%s", diff)
	}
	if !strings.Contains(got[0].HTML, `<a href="https://jit.example/approve?grant=g-1&amp;event=e-2">Review the request</a>`) {
		t.Errorf("HTML part not decoded: %q", got[0].HTML)
	}
	if !regexp.MustCompile(`^\d{12}-\d{8}T\d{6}\.\d{9}Z\.eml$`).MatchString(got[0].ID) {
		t.Errorf("ID %q is not <seq>-<time>.eml", got[0].ID)
	}
	if at := got[0].Time; at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("Time %v is not the arrival time", at)
	}
}

func TestStoredFileIsTheRawMessageWithTraceFields(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mail")
	mb := open(t, mailbox.Config{Dir: dir, Domain: "mail.jit.local"})
	mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com"}, approvalMail())

	id := mb.Messages()[0].ID
	raw, err := os.ReadFile(filepath.Join(dir, id))
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(raw), "\r\nFrom: ")
	if !ok {
		t.Fatalf("stored file does not hold the message:\n%s", raw)
	}
	if want := strings.ReplaceAll(approvalMail(), "\n", "\r\n"); "From: "+body != want {
		t.Errorf("stored message differs from the one sent:\n%s", cmp.Diff(want, "From: "+body))
	}
	for _, s := range []string{"Return-Path: <jit@pipeline.example>", "by mail.jit.local with ESMTP", "for <bob@example.com>"} {
		if !strings.Contains(head, s) {
			t.Errorf("trace fields %q lack %q", head, s)
		}
	}
	if infos, _ := os.ReadDir(dir); len(infos) != 1 {
		t.Errorf("directory holds %d entries, want the one .eml", len(infos))
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mail")
	mb, err := mailbox.Open(mailbox.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com"},
			fmt.Sprintf("From: jit@pipeline.example\nTo: bob@example.com\nSubject: n%d\n\nbody %d https://jit.example/%d\n", i, i, i))
	}
	before := mb.Messages()
	if err := mb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := mb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A write interrupted by a crash leaves a temporary file: ignored and removed.
	if err := os.WriteFile(filepath.Join(dir, ".000000000009-x.eml.tmp-1"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}

	again := open(t, mailbox.Config{Dir: dir})
	if diff := cmp.Diff(before, again.Messages()); diff != "" {
		t.Errorf("messages after restart (-before, +after):\n%s", diff)
	}
	mustSend(t, again, "jit@pipeline.example", []string{"bob@example.com"}, "From: jit@pipeline.example\nTo: bob@example.com\nSubject: n3\n\nafter\n")
	after := again.Messages()
	if len(after) != 4 || after[3].Subject != "n3" || after[3].ID <= before[2].ID {
		t.Errorf("the new message does not sort last: %v", ids(after))
	}
	if _, err := os.Stat(filepath.Join(dir, ".000000000009-x.eml.tmp-1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left in place: %v", err)
	}
}

func ids(msgs []mailbox.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID+" "+m.Subject)
	}
	return out
}

func TestTooLargeRefusedWith552(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{MaxMessageBytes: 1024})
	big := "From: jit@pipeline.example\nTo: bob@example.com\nSubject: big\n\n" + strings.Repeat("0123456789abcdef\n", 200)
	err := send(mb, "jit@pipeline.example", []string{"bob@example.com"}, big)
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 552 {
		t.Fatalf("SendMail of %d bytes = %v, want a 552 refusal", len(big), err)
	}
	if n := len(mb.Messages()); n != 0 {
		t.Errorf("%d messages stored, want none", n)
	}
	// The server still takes mail that fits.
	mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com"}, "From: jit@pipeline.example\nTo: bob@example.com\nSubject: small\n\nok\n")
	if n := len(mb.Messages()); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mail")
	mb := open(t, mailbox.Config{Dir: dir})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- send(mb, "jit@pipeline.example", []string{fmt.Sprintf("u%d@example.com", i)},
				fmt.Sprintf("From: jit@pipeline.example\nTo: u%d@example.com\nSubject: m%d\n\nhello\n", i, i))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("SendMail: %v", err)
		}
	}
	msgs := mb.Messages()
	subjects := map[string]bool{}
	for i, m := range msgs {
		subjects[m.Subject] = true
		if i > 0 && msgs[i-1].ID >= m.ID {
			t.Errorf("messages not sorted by ID: %q before %q", msgs[i-1].ID, m.ID)
		}
	}
	if len(msgs) != n || len(subjects) != n {
		t.Errorf("got %d messages with %d distinct subjects, want %d", len(msgs), len(subjects), n)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != n {
		t.Errorf("%d .eml files, want %d", len(files), n)
	}
}

func TestHTTPRequestOnSMTPPortRefused(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{})
	c, err := net.Dial("tcp", mb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if greeting, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	// What a browser sends for a text/plain form posted to the SMTP port.
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\r\n"+
		"HELO x\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: planted\r\n\r\nclick\r\n.\r\nQUIT\r\n")
	rest, _ := r.ReadString(0)
	if strings.Contains(rest, "250") || strings.Contains(rest, "354") {
		t.Errorf("server answered the smuggled commands: %q", rest)
	}
	if n := len(mb.Messages()); n != 0 {
		t.Errorf("%d messages stored, want none", n)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  mailbox.Config
		want []string // substrings, one per expected problem
	}{
		{"defaults", mailbox.Config{Dir: "d"}, nil},
		{"loopback_v4", mailbox.Config{Dir: "d", Addr: "127.0.0.1:2525"}, nil},
		{"loopback_other_v4", mailbox.Config{Dir: "d", Addr: "127.0.0.2:0"}, nil},
		{"loopback_v6", mailbox.Config{Dir: "d", Addr: "[::1]:0"}, nil},
		{"localhost", mailbox.Config{Dir: "d", Addr: "localhost:0", Domain: "mail.jit.local"}, nil},
		{"all_interfaces_v4", mailbox.Config{Dir: "d", Addr: "0.0.0.0:25"}, []string{"loopback"}},
		{"all_interfaces_v6", mailbox.Config{Dir: "d", Addr: "[::]:25"}, []string{"loopback"}},
		{"empty_host", mailbox.Config{Dir: "d", Addr: ":2525"}, []string{"loopback"}},
		{"lan_address", mailbox.Config{Dir: "d", Addr: "192.168.1.10:25"}, []string{"loopback"}},
		{"host_name", mailbox.Config{Dir: "d", Addr: "mail.example.com:25"}, []string{"loopback"}},
		{"no_port", mailbox.Config{Dir: "d", Addr: "127.0.0.1"}, []string{"host:port"}},
		{"bad_port", mailbox.Config{Dir: "d", Addr: "127.0.0.1:smtp"}, []string{"port"}},
		{"everything_wrong", mailbox.Config{Addr: "0.0.0.0:25", Domain: "bad domain", MaxMessageBytes: -1},
			[]string{"dir is required", "loopback", "domain", "negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			if got := len(strings.Split(err.Error(), "\n")); got != len(tc.want) {
				t.Errorf("Validate() reported %d problems, want %d: %v", got, len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestOpenRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	_, err := mailbox.Open(mailbox.Config{Dir: t.TempDir(), Addr: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Open on 0.0.0.0 = %v, want a loopback refusal", err)
	}
}

func TestArrivalTimeFromClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	mb := open(t, mailbox.Config{Clock: clock.NewManual(start)})
	mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com"}, "From: jit@pipeline.example\nTo: bob@example.com\nSubject: s\n\nx\n")
	got := mb.Messages()[0]
	if !got.Time.Equal(start) || got.ID != "000000000001-20300102T030405.000000006Z.eml" {
		t.Errorf("Time %v, ID %q; want the clock's %v in both", got.Time, got.ID, start)
	}
}
