package pages

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"sync"
	"time"
)

//go:embed templates/*.html templates/style.css
var files embed.FS

// style is the pages' stylesheet, inlined in every page: the pages then
// need no route of their own for it wherever they are mounted, and the CSP
// allows exactly this text by its hash.
var style = mustRead("templates/style.css")

// headers are sent with every response of the pages, error pages and
// redirects included: nothing may run (the pages have no script), load
// from elsewhere, frame them or learn their URLs — which carry the link
// token — through a referrer, and no cache keeps a page that shows a
// request.
var headers = map[string]string{
	"Content-Security-Policy": "default-src 'none'; style-src " + styleHash() + "; img-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"Referrer-Policy":            "no-referrer",
	"Cache-Control":              "no-store",
	"X-Content-Type-Options":     "nosniff",
	"X-Frame-Options":            "DENY",
	"Cross-Origin-Opener-Policy": "same-origin",
}

func styleHash() string {
	sum := sha256.Sum256([]byte(style))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// sameOriginPost reports whether a form's POST came from a page of origin
// want. Browsers send the page's Origin with it — except that under
// Referrer-Policy: no-referrer, which every page here sends so the link's
// token never leaves in a Referer, they send "Origin: null" (Fetch,
// "serializing a request origin"). Then Sec-Fetch-Site, which pages cannot
// set (a forbidden header name) and every current browser sends, says
// whether the form was on the same origin: a null Origin from anywhere
// else (a sandboxed frame, a foreign site) is refused.
func sameOriginPost(r *http.Request, want string) bool {
	return r.Header.Get("Origin") == want || NullOriginFromSameOrigin(r)
}

// NullOriginFromSameOrigin reports whether a request carrying "Origin:
// null" came from a page of its own origin (Sec-Fetch-Site: same-origin):
// what a no-referrer page's form sends. Servers in front of the pages
// that check Origin use it to let those forms through.
func NullOriginFromSameOrigin(r *http.Request) bool {
	return r.Header.Get("Origin") == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

func setHeaders(w http.ResponseWriter) {
	for k, v := range headers {
		w.Header().Set(k, v)
	}
}

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return string(b)
}

// pageTemplates are the pages, each parsed with the shared layout, on the
// first page rendered rather than at package init: every deployed
// function links this package, and only intake and approval serve pages
// (issue 14: parsing them all was a tenth of a function's own start-up
// work). The templates are embedded, so a parse error is a bug of the
// build, which the package's tests render every page to catch.
var pageTemplates = sync.OnceValue(func() map[string]*template.Template {
	return map[string]*template.Template{
		"grant": parse("grant.html"),
		"error": parse("error.html"),
		"login": parse("login.html"),

		"entitlements": parse("entitlements.html"),
		"request":      parse("request.html"),
		"grants":       parse("grants.html"),
		"mygrant":      parse("mygrant.html"),
		"policy":       parse("policy.html"),
	}
})

func parse(page string) *template.Template {
	funcs := template.FuncMap{
		// The stylesheet is ours, embedded: CSS, not text to escape (its
		// hash in the CSP must match the style element byte for byte).
		"css":  func() template.CSS { return template.CSS(style) }, //nolint:gosec // our own embedded file
		"when": newTimeView,
	}
	return template.Must(template.New(page).Funcs(funcs).ParseFS(files, "templates/base.html", "templates/nav.html", "templates/"+page))
}

// render writes a page; the buffer keeps a template error from sending
// half a page with a 200.
func render(w http.ResponseWriter, status int, page string, data any) {
	var buf bytes.Buffer
	if err := pageTemplates()[page].ExecuteTemplate(&buf, "base", data); err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("internal error: the page could not be rendered\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorView is an error page: a heading, what happened and what to do,
// and perhaps a link onwards.
type errorView struct {
	Title      string
	Paragraphs []string
	Link       *linkView
}

type linkView struct{ Href, Text string }

func renderError(w http.ResponseWriter, status int, title string, paragraphs ...string) {
	render(w, status, "error", errorView{Title: title, Paragraphs: paragraphs})
}

// timeView is an instant for people (UTC, to the second) and for
// machines (the datetime attribute).
type timeView struct{ ISO, Text string }

func newTimeView(t time.Time) timeView {
	if t.IsZero() {
		return timeView{}
	}
	t = t.UTC()
	return timeView{ISO: t.Format(time.RFC3339), Text: t.Format("2006-01-02 15:04:05 UTC")}
}
