package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
)

// defaultAPI is where `jit local` listens unless told otherwise.
const defaultAPI = "http://127.0.0.1:8080"

// globals are the flags every API command takes.
type globals struct {
	api         string
	approvalAPI string // approve and deny only; empty means api
	as          string
	format      string
	iapClientID string
}

// addGlobals registers the global flags on fs. withFormat is false for
// `jit export`, whose --format is the export's (csv or json).
func addGlobals(fs *flag.FlagSet, withFormat bool) *globals {
	g := &globals{}
	fs.StringVar(&g.api, "api", envOr("JIT_API", defaultAPI), "URL of the pipeline's API (env JIT_API)")
	fs.StringVar(&g.as, "as", "", "local mode only: act as this user (sends X-Debug-Principal: user:EMAIL); refused unless --api is a loopback address")
	fs.StringVar(&g.iapClientID, "iap-client-id", os.Getenv("JIT_IAP_CLIENT_ID"), "OAuth client ID of IAP, the audience of the ID token gcloud prints (env JIT_IAP_CLIENT_ID)")
	if withFormat {
		fs.StringVar(&g.format, "format", "table", "output: table or json (the API's JSON, indented)")
	}
	return g
}

// check validates the global flags, as usage errors.
func (g *globals) check() error {
	if g.format != "" && g.format != "table" && g.format != "json" {
		return usageErrorf("--format must be table or json, got %q", g.format)
	}
	return nil
}

// client builds the API client the flags describe. --as is refused unless
// the API is on this machine: the header names anyone, and only a local
// pipeline on loopback trusts it, so it must never travel anywhere else.
func (g *globals) client() (*client, error) {
	return g.clientFor("--api", g.api)
}

// approvalClient is the client of approve and deny: on Google Cloud the
// approval function serves them at its own URL (terraform's pages_url),
// locally the one server does.
func (g *globals) approvalClient() (*client, error) {
	if g.approvalAPI == "" {
		return g.client()
	}
	return g.clientFor("--approval-api", g.approvalAPI)
}

func (g *globals) clientFor(flagName, api string) (*client, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, usageErrorf("%s must be an http or https URL without query, fragment or user info, got %q", flagName, api)
	}
	c := &client{base: u, http: newHTTPClient()}
	if g.as != "" {
		if !isLoopbackHost(u.Hostname()) {
			return nil, usageErrorf("--as is for a local pipeline only: %s (%s) is not a loopback address, and the X-Debug-Principal header is never sent elsewhere; on Google Cloud leave --as out and sign in with gcloud (docs/cli.md)", u.Host, flagName)
		}
		if strings.ContainsAny(g.as, " \t\r\n") || !strings.Contains(g.as, "@") {
			return nil, usageErrorf("--as must be an email address, got %q", g.as)
		}
		c.principal = g.as
		return c, nil
	}
	// An ID token is a credential: not over plain HTTP beyond this machine.
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return nil, usageErrorf("refusing to send an ID token over plain http to %s; use https", u.Host)
	}
	aud := g.iapClientID
	c.token = func(ctx context.Context) (string, error) { return idToken(ctx, aud) }
	return c, nil
}

// isLoopbackHost reports whether host (a URL's Hostname: no port, no
// brackets) names this machine: "localhost" or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// idToken is the caller's Google ID token: JIT_ID_TOKEN if set (CI, or a
// token minted some other way), else what gcloud prints, with IAP's
// OAuth client ID as the audience when one is given.
func idToken(ctx context.Context, audience string) (string, error) {
	if tok := strings.TrimSpace(os.Getenv("JIT_ID_TOKEN")); tok != "" {
		return tok, nil
	}
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return "", errNoCredentials
	}
	args := []string{"auth", "print-identity-token"}
	if audience != "" {
		args = append(args, "--audiences="+audience)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, gcloud, args...) //nolint:gosec // G204: gcloud from PATH, no shell; the audience is one argument
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gcloud %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" {
		return "", errors.New("gcloud auth print-identity-token printed no token; run gcloud auth login")
	}
	return tok, nil
}
