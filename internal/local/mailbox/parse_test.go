package mailbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jitpipeline/jit/internal/local/mailbox"
)

func TestParse(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		raw  string
		want mailbox.Message
	}{
		{
			name: "plain_text_only",
			raw:  "From: a@example.com\nTo: b@example.com\nSubject: hi\n\nsee https://x.example/a, and https://x.example/b.\n",
			want: mailbox.Message{From: "a@example.com", To: []string{"b@example.com"}, Subject: "hi",
				Text:  "see https://x.example/a, and https://x.example/b.\n",
				Links: []string{"https://x.example/a", "https://x.example/b"}},
		},
		{
			name: "html_only_with_entities_and_other_schemes",
			raw: "From: a@example.com\nTo: b@example.com\nSubject: h\nContent-Type: text/html; charset=utf-8\n\n" +
				`<a href="https://x.example/?a=1&amp;b=2">x</a><a href="/relative">r</a><a href="mailto:a@example.com">m</a>` +
				`<a href=" javascript:alert(1)">j</a><area href="http://x.example/map"><a href="https://x.example/?a=1&b=2">again</a>`,
			want: mailbox.Message{From: "a@example.com", To: []string{"b@example.com"}, Subject: "h",
				HTML: `<a href="https://x.example/?a=1&amp;b=2">x</a><a href="/relative">r</a><a href="mailto:a@example.com">m</a>` +
					`<a href=" javascript:alert(1)">j</a><area href="http://x.example/map"><a href="https://x.example/?a=1&b=2">again</a>`,
				Links: []string{"https://x.example/?a=1&b=2", "http://x.example/map"}},
		},
		{
			name: "latin1_quoted_printable_and_q_encoded_subject",
			raw: "From: =?ISO-8859-1?Q?Jos=E9?= <jose@example.com>\nTo: b@example.com\n" +
				"Subject: =?ISO-8859-1?Q?caf=E9?= =?UTF-8?Q?_=E2=98=95?=\n" +
				"Content-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: quoted-printable\n\ncaf=E9\n",
			want: mailbox.Message{From: "jose@example.com", To: []string{"b@example.com"}, Subject: "café ☕", Text: "café\n"},
		},
		{
			name: "nested_mixed_with_attachment",
			raw: `From: a@example.com
To: b@example.com
Subject: nested
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

aGVsbG8gaHR0cHM6Ly94LmV4YW1wbGUvdA==
--inner
Content-Type: text/html; charset=utf-8

<p>hello</p>
--inner--
--outer
Content-Type: text/plain
Content-Disposition: attachment; filename=log.txt

not the body https://x.example/attached
--outer--
`,
			want: mailbox.Message{From: "a@example.com", To: []string{"b@example.com"}, Subject: "nested",
				Text: "hello https://x.example/t", HTML: "<p>hello</p>", Links: []string{"https://x.example/t"}},
		},
		{
			name: "threading_without_brackets_and_prose_brackets",
			raw: "From: a@example.com\nTo: b@example.com, c@example.com\nMessage-ID: id-1@x\nReferences: <r1@x><r2@x>\n" +
				"In-Reply-To: <r2@x> (comment)\nSubject: t\n\n(https://x.example/p(1)) [https://x.example/q]\n",
			want: mailbox.Message{From: "a@example.com", To: []string{"b@example.com", "c@example.com"}, Subject: "t",
				MessageID: "id-1@x", InReplyTo: "r2@x", References: []string{"r1@x", "r2@x"},
				Text:  "(https://x.example/p(1)) [https://x.example/q]\n",
				Links: []string{"https://x.example/p(1)", "https://x.example/q"}},
		},
		{
			name: "unparsable_addresses_kept_whole",
			raw:  "From: not an address\nTo: also <broken\nSubject: s\n\nx\n",
			want: mailbox.Message{From: "not an address", To: []string{"also <broken"}, Subject: "s", Text: "x\n"},
		},
		{
			name: "no_header_keeps_raw_text",
			raw:  "just some bytes without a header \xff",
			want: mailbox.Message{Text: "just some bytes without a header \uFFFD"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := mailbox.Parse("id.eml", at, []byte(strings.ReplaceAll(tc.raw, "\n", "\r\n")))
			tc.want.ID, tc.want.Time = "id.eml", at
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse (-want, +got):\n%s", diff)
			}
		})
	}
}
