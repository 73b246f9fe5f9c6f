package pipeline

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/jitpipeline/jit/internal/pages"
)

// sameHostOnly guards the loopback server against DNS rebinding: a web
// page whose name an attacker re-points at 127.0.0.1 reaches this server
// from the victim's browser, but with its own name in Host (and Origin).
// So the Host must name this server (127.0.0.1, localhost or [::1] with
// its port), and a call that changes anything must not come from another
// origin: an Origin header, when a browser sends one, must be this
// server's. Pages sent with Referrer-Policy: no-referrer make browsers
// send "Origin: null" with their forms' POSTs; that is taken for this
// server's only with Sec-Fetch-Site: same-origin, which pages cannot set.
// Clients that are not browsers send no Origin and are let through — the
// debug header already limits them to loopback.
func sameHostOnly(serverURL string, next http.Handler) http.Handler {
	u, _ := url.Parse(serverURL)
	_, port, _ := net.SplitHostPort(u.Host)
	hosts := map[string]bool{}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		hosts[h+":"+port] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts[strings.ToLower(r.Host)] {
			refuseHost(w, "Host", "this local server answers only to "+u.Host+", localhost or [::1] on its port")
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !safeMethod(r.Method) && !pages.NullOriginFromSameOrigin(r) {
			o, err := url.Parse(origin)
			if err != nil || o.Scheme != "http" || !hosts[strings.ToLower(o.Host)] || o.Path != "" {
				refuseHost(w, "Origin", "changes are accepted only from pages of this local server")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func refuseHost(w http.ResponseWriter, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{ //nolint:errcheck // client gone
		"code": "PERMISSION_DENIED", "field": field, "message": msg,
	}})
}
