package mailbox

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/text/encoding/htmlindex"
)

// Message is one stored mail as the page and tests see it.
type Message struct {
	// ID is the file name under Config.Dir; IDs sort by arrival.
	ID string `json:"id"`
	// MessageID, InReplyTo and References are the threading headers,
	// without angle brackets.
	MessageID  string   `json:"messageId"`
	InReplyTo  string   `json:"inReplyTo"`
	References []string `json:"references"`
	// From, To and Cc are addresses from the header fields (addr-spec
	// only, display names dropped).
	From string   `json:"from"`
	To   []string `json:"to"`
	Cc   []string `json:"cc"`
	// Subject is RFC 2047 decoded.
	Subject string `json:"subject"`
	// Text and HTML are the first text/plain and text/html parts that
	// are not attachments, transfer-decoded and converted to UTF-8.
	Text string `json:"text"`
	HTML string `json:"html"`
	// Links are the http and https URLs of the text part, then the
	// http and https hrefs of the HTML part, each once, in order.
	Links []string `json:"links"`
	// Time is when the mailbox accepted the message.
	Time time.Time `json:"time"`
}

func (m Message) clone() Message {
	m.References = slices.Clone(m.References)
	m.To, m.Cc, m.Links = slices.Clone(m.To), slices.Clone(m.Cc), slices.Clone(m.Links)
	return m
}

// maxDepth bounds nested multiparts; real mail nests three or four deep.
const maxDepth = 10

// Parse reads a stored message. It never fails: what cannot be parsed is
// left empty, and a message with no readable header keeps its raw bytes as
// its text, so a damaged file still shows up on the page.
func Parse(id string, at time.Time, raw []byte) Message {
	m := Message{ID: id, Time: at, References: []string{}, To: []string{}, Cc: []string{}, Links: []string{}}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		m.Text = strings.ToValidUTF8(string(raw), "\uFFFD")
		return m
	}
	h := msg.Header
	dec := wordDecoder()
	m.Subject = decodeHeader(dec, h.Get("Subject"))
	m.MessageID = firstID(h.Get("Message-Id"))
	m.InReplyTo = firstID(h.Get("In-Reply-To"))
	m.References = ids(h.Get("References"))
	if from := addresses(dec, h, "From"); len(from) > 0 {
		m.From = from[0]
	}
	m.To = addresses(dec, h, "To")
	m.Cc = addresses(dec, h, "Cc")

	p := &parts{}
	p.walk(textproto.MIMEHeader(h), msg.Body, 0)
	m.Text, m.HTML = p.text, p.html
	m.Links = dedupe(append(textLinks(m.Text), htmlLinks(m.HTML)...))
	return m
}

func wordDecoder() *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: charsetReader}
}

// charsetReader converts any charset the WHATWG encoding standard names
// to UTF-8.
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	e, err := htmlindex.Get(charset)
	if err != nil {
		return nil, err //nolint:wrapcheck // mime reports it with the word
	}
	return e.NewDecoder().Reader(r), nil
}

// decodeHeader decodes RFC 2047 encoded words; undecodable words stay as
// they are.
func decodeHeader(dec *mime.WordDecoder, v string) string {
	s, err := dec.DecodeHeader(v)
	if err != nil {
		s = v
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// addresses parses an address list; if it does not parse, the decoded
// field is kept whole so the page still shows something.
func addresses(dec *mime.WordDecoder, h mail.Header, key string) []string {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return []string{}
	}
	p := mail.AddressParser{WordDecoder: dec}
	list, err := p.ParseList(v)
	if err != nil {
		return []string{decodeHeader(dec, v)}
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// ids splits a field of message ids ("<a@x> <b@y>") into ids without
// angle brackets.
func ids(v string) []string {
	out := []string{}
	for rest := v; ; {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(rest[i+1 : i+j]); id != "" {
			out = append(out, id)
		}
		rest = rest[i+j+1:]
	}
	if len(out) == 0 {
		// Not bracketed (some clients): whitespace-separated.
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func firstID(v string) string {
	if l := ids(v); len(l) > 0 {
		return l[0]
	}
	return ""
}

// parts collects the first text/plain and text/html body of a MIME tree.
type parts struct {
	text, html         string
	haveText, haveHTML bool
}

func (p *parts) walk(h textproto.MIMEHeader, body io.Reader, depth int) {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, params = "text/plain", nil
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= maxDepth || params["boundary"] == "" {
			return
		}
		r := multipart.NewReader(body, params["boundary"])
		for {
			// Raw: this walk does the transfer decoding for every part alike
			// (NextPart would decode quoted-printable only).
			part, err := r.NextRawPart()
			if err != nil {
				return
			}
			p.walk(part.Header, part, depth+1)
			part.Close()
		}
	}
	if disp, _, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && disp == "attachment" {
		return
	}
	switch {
	case mt == "text/plain" && !p.haveText:
		p.text, p.haveText = decodeBody(h, params["charset"], body), true
	case mt == "text/html" && !p.haveHTML:
		p.html, p.haveHTML = decodeBody(h, params["charset"], body), true
	}
}

// decodeBody undoes the Content-Transfer-Encoding and converts the charset
// to UTF-8; invalid bytes become U+FFFD.
func decodeBody(h textproto.MIMEHeader, charset string, body io.Reader) string {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body) // ignores CR and LF
	}
	data, _ := io.ReadAll(body) // keep what decoded before an error
	cs := strings.ToLower(strings.TrimSpace(charset))
	if cs != "" && cs != "utf-8" && cs != "us-ascii" && !utf8.Valid(data) {
		if e, err := htmlindex.Get(cs); err == nil {
			if d, err := e.NewDecoder().Bytes(data); err == nil {
				data = d
			}
		}
	}
	s := strings.ToValidUTF8(string(data), "\uFFFD")
	return strings.ReplaceAll(s, "\r\n", "\n")
}

// urlInText matches http and https URLs in plain text; trailing
// punctuation is trimmed by trimURL.
var urlInText = regexp.MustCompile(`(?i)\bhttps?://[^\s<>"'\x60]+`)

func textLinks(s string) []string {
	var out []string
	for _, u := range urlInText.FindAllString(s, -1) {
		if u = trimURL(u); isWebURL(u) {
			out = append(out, u)
		}
	}
	return out
}

// trimURL drops the sentence punctuation that follows a URL in prose, and
// a closing bracket that has no opening one inside the URL.
func trimURL(u string) string {
	for u != "" {
		c := u[len(u)-1]
		switch {
		case strings.IndexByte(".,;:!?*", c) >= 0:
		case c == ')' && strings.Count(u, "(") < strings.Count(u, ")"):
		case c == ']' && strings.Count(u, "[") < strings.Count(u, "]"):
		case c == '}' && strings.Count(u, "{") < strings.Count(u, "}"):
		default:
			return u
		}
		u = u[:len(u)-1]
	}
	return u
}

// htmlLinks is every http or https href of an <a> or <area>, entities
// decoded. Other schemes (mailto:, javascript:, relative) are left out:
// the page makes each link clickable.
func htmlLinks(s string) []string {
	var out []string
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			if tag := string(name); tag != "a" && tag != "area" {
				continue
			}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if string(k) == "href" {
					if u := strings.TrimSpace(string(v)); isWebURL(u) {
						out = append(out, u)
					}
				}
			}
		}
	}
}

// isWebURL reports whether u is an absolute http or https URL with a host.
func isWebURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

func dedupe(links []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, l := range links {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}
