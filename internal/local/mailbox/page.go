package mailbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// pageStyle is the page's only style sheet; the Content-Security-Policy
// allows exactly it, by hash, and nothing else (no script, no images, no
// frames, no forms).
const pageStyle = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
article{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:1em 0}
h2{font-size:1.1em;margin:.3em 0}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:.5em 0;font-size:.9em}
dt{color:#666}dd{margin:0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5em;border-radius:4px}
ul.links{padding-left:1.2em}summary{cursor:pointer;color:#666;font-size:.9em}`

var contentSecurityPolicy = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}()

// page shows each message's fields as escaped text. The HTML part is mail
// content an attacker may have written: it is shown as source in a closed
// <details>, never rendered. Links are clickable; html/template would
// neutralise any non-web scheme, and Parse keeps only http and https.
var page = template.Must(template.New("mailbox").Funcs(template.FuncMap{
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>Local mailbox</title>
<style>` + pageStyle + `</style>
</head>
<body>
<h1>Local mailbox</h1>
<p>Mail the local pipeline sent, newest first; none of it left this machine.
{{- if .To}} Showing mail to or copied to <b>{{.To}}</b> (<a href="?">show all</a>).{{end}}
{{len .Messages}} message{{if ne (len .Messages) 1}}s{{end}}.</p>
{{range .Messages}}
<article id="{{.ID}}">
<h2>{{if .Subject}}{{.Subject}}{{else}}(no subject){{end}}</h2>
<dl>
<dt>Time</dt><dd><time datetime="{{rfc3339 .Time}}">{{rfc3339 .Time}}</time></dd>
<dt>From</dt><dd>{{.From}}</dd>
<dt>To</dt><dd>{{range $i, $a := .To}}{{if $i}}, {{end}}<a href="?to={{$a}}">{{$a}}</a>{{end}}</dd>
{{- if .Cc}}
<dt>Cc</dt><dd>{{range $i, $a := .Cc}}{{if $i}}, {{end}}<a href="?to={{$a}}">{{$a}}</a>{{end}}</dd>
{{- end}}
{{- if .MessageID}}
<dt>Message-ID</dt><dd>{{.MessageID}}</dd>
{{- end}}
{{- if .InReplyTo}}
<dt>In-Reply-To</dt><dd>{{.InReplyTo}}</dd>
{{- end}}
</dl>
{{- if .Links}}
<ul class="links">
{{- range .Links}}
<li><a href="{{.}}" rel="noreferrer noopener">{{.}}</a></li>
{{- end}}
</ul>
{{- end}}
<pre>{{.Text}}</pre>
{{- if .HTML}}
<details><summary>HTML part (source, not rendered)</summary><pre>{{.HTML}}</pre></details>
{{- end}}
</article>
{{- else}}
<p>No mail yet.</p>
{{- end}}
</body>
</html>
`))

// ServeHTTP is the mailbox page, meant for GET /local/mail: HTML by
// default, {"messages":[...]} with ?format=json or Accept:
// application/json; ?to=address keeps the messages whose To or Cc holds
// that address (ASCII case ignored). Newest first either way.
func (m *Mailbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Vary", "Accept")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	to := strings.TrimSpace(q.Get("to"))
	if to != "" && !emailaddr.Valid(to) {
		http.Error(w, "to: not an email address", http.StatusBadRequest)
		return
	}
	msgs := m.Messages()
	if to != "" {
		msgs = slices.DeleteFunc(msgs, func(msg Message) bool { return !addressedTo(msg, to) })
	}
	slices.Reverse(msgs)

	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string][]Message{"messages": msgs}); err != nil {
			m.log.DebugContext(r.Context(), "failed to write the mailbox", "error", err)
		}
		return
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, struct {
		To       string
		Messages []Message
	}{to, msgs}); err != nil {
		m.log.ErrorContext(r.Context(), "failed to render the mailbox", "error", err)
		http.Error(w, "failed to render the mailbox", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes()) //nolint:errcheck // client gone
}

func addressedTo(msg Message, addr string) bool {
	eq := func(a string) bool { return emailaddr.Equal(a, addr) }
	return slices.ContainsFunc(msg.To, eq) || slices.ContainsFunc(msg.Cc, eq)
}

// wantsJSON: ?format=json, or an Accept header naming application/json
// (unless ?format=html says otherwise).
func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "application/json") {
			return true
		}
	}
	return false
}
