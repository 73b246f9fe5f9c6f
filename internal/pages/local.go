package pages

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// LoginPath is where LocalLogin serves the user picker; Config.SignInURL
// locally.
const LoginPath = "/local/login"

// LocalUserCookie carries the picked user in local mode.
const LocalUserCookie = "jit_local_user"

// LocalLoginConfig is what the local user picker needs.
type LocalLoginConfig struct {
	// Users lists the demo users' addresses (the world file's people),
	// asked on every request so an edited world shows at once.
	Users func() []string
	// Logger is optional.
	Logger *slog.Logger
}

// Validate reports every missing field.
func (c LocalLoginConfig) Validate() error {
	if c.Users == nil {
		return errors.New("Users is required")
	}
	return nil
}

type localLogin struct {
	users func() []string
	log   *slog.Logger
}

// LocalLogin is the user picker of local mode: GET LoginPath?next=PATH
// lists the demo users as buttons; choosing one sets LocalUserCookie and
// goes back to PATH. It is a stand-in for IAP's sign-in and vouches for
// nobody: it serves only requests from loopback to a loopback host name,
// and LocalCookieCaller reads the cookie only from loopback.
func LocalLogin(cfg LocalLoginConfig) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &localLogin{users: cfg.Users, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+LoginPath, l.show)
	mux.HandleFunc("POST "+LoginPath, l.pick)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		// A page elsewhere that resolves its own name to 127.0.0.1 (DNS
		// rebinding) reaches us from loopback too, but under its name.
		if !loopback(r) || !loopbackHost(r.Host) {
			renderError(w, http.StatusForbidden, "Local mode only", "The user picker serves only this machine, on localhost.")
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

type loginView struct {
	Title, Action, Next, Current, Notice string
	Users                                []string
}

func (l *localLogin) show(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if next == "" {
		next = "/"
	}
	if !localPath(next) {
		renderError(w, http.StatusBadRequest, "Refused", "The page to return to must be a path on this site.")
		return
	}
	current, _ := LocalCookieCaller(r)
	render(w, http.StatusOK, "login", loginView{Title: "Choose a user", Action: LoginPath, Next: next, Current: current, Users: l.users()})
}

func (l *localLogin) pick(w http.ResponseWriter, r *http.Request) {
	// The same origin only: a page elsewhere must not sign the browser in
	// as someone of its choosing.
	if !sameOriginPost(r, "http://"+r.Host) {
		renderError(w, http.StatusForbidden, "Refused", "Choose the user on the picker page itself.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		renderError(w, http.StatusBadRequest, "Unreadable form", "The form could not be read.")
		return
	}
	next, user := r.PostForm.Get("next"), r.PostForm.Get("user")
	if !localPath(next) {
		renderError(w, http.StatusBadRequest, "Refused", "The page to return to must be a path on this site.")
		return
	}
	users := l.users()
	if !slices.ContainsFunc(users, func(u string) bool { return emailaddr.Equal(u, user) }) {
		render(w, http.StatusBadRequest, "login", loginView{Title: "Choose a user", Action: LoginPath, Next: next,
			Notice: "Choose one of the demo users.", Users: users})
		return
	}
	email, _ := emailaddr.Canonical(user) // Equal checked it
	// No Secure: local mode is plain http on loopback, where browsers
	// treat the connection as secure anyway.
	http.SetCookie(w, &http.Cookie{Name: LocalUserCookie, Value: email, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode}) //nolint:gosec // loopback http
	l.log.InfoContext(r.Context(), "local user picked", "user", email)
	http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // localPath checked next is a path of this origin
}

// LocalCookieCaller is the user picked with LocalLogin, for a local
// authenticator to accept besides the debug header: only on requests from
// loopback, and only a canonical address.
func LocalCookieCaller(r *http.Request) (email string, ok bool) {
	if !loopback(r) {
		return "", false
	}
	c, err := r.Cookie(LocalUserCookie)
	if err != nil {
		return "", false
	}
	email, err = emailaddr.Canonical(c.Value)
	return email, err == nil
}

func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// loopbackHost reports whether the Host header names this machine.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// localPath reports whether s is a path on this origin that a redirect
// may go to: absolute-path only, so never another host ("//evil",
// "https://evil", or "/\evil", which browsers read as "//evil").
func localPath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\") {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}
