package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// requestedWith is the X-Requested-With value of every changing call: the
// API refuses changes without the header (a browser cannot send it
// cross-site without a preflight).
const requestedWith = "jit-cli"

// maxResponse bounds what the client reads of one response that is not
// streamed to a file: the API's answers are small JSON documents.
const maxResponse = 32 << 20

// client calls the pipeline's HTTP API as one person: in local mode named
// by the X-Debug-Principal header, on Google Cloud by an ID token.
type client struct {
	base *url.URL
	// principal is --as: sent as X-Debug-Principal; set only when base
	// is a loopback address (globals.client checks).
	principal string
	// token returns the ID token sent as a bearer token when principal is
	// empty; it is called at most once.
	token  func(context.Context) (string, error)
	cached string
	http   *http.Client
}

// apiError is the API's refusal, {"error": {"code", "message", "field"}},
// or a response that was not one (Code then names the HTTP status).
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute,
		// Go forwards custom headers such as X-Debug-Principal on redirects
		// to any host; the CLI follows none, so its headers reach only the
		// API it was pointed at.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// call sends one request and returns the body of a 2xx response. body,
// when not nil, is sent as JSON.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the response: %w", method, path, err)
	}
	return data, nil
}

// send sends one request and returns a 2xx response with its body unread,
// or the API's refusal as an *apiError.
func (c *client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	// path is already escaped (grantPath); it is appended as is so that
	// "grants:export" and "{id}:approve" reach the API as it spells them.
	u, err := url.Parse(strings.TrimSuffix(c.base.String(), "/") + path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("X-Requested-With", requestedWith)
		req.Header.Set("Content-Type", "application/json")
	}
	if c.principal != "" {
		req.Header.Set("X-Debug-Principal", "user:"+c.principal)
	} else if c.token != nil {
		if c.cached == "" {
			if c.cached, err = c.token(ctx); err != nil {
				return nil, err
			}
		}
		req.Header.Set("Authorization", "Bearer "+c.cached)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// decodeError reads a refusal. A body that is not the API's error shape
// (a proxy's page, a route the server does not have) is reported by its
// HTTP status and first line.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error *apiError `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != nil && body.Error.Code != "" {
		body.Error.Status = resp.StatusCode
		return body.Error
	}
	msg, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode/100 == 3 {
		msg = fmt.Sprintf("redirected to %q, which the CLI does not follow; point --api at the API itself", resp.Header.Get("Location"))
	}
	return &apiError{Status: resp.StatusCode, Code: fmt.Sprintf("HTTP_%d", resp.StatusCode), Message: msg}
}

// getJSON calls GET and decodes the response into v; it also returns the
// raw body, which --format=json prints as the API sent it.
func (c *client) getJSON(ctx context.Context, path string, query url.Values, v any) ([]byte, error) {
	return c.callJSON(ctx, http.MethodGet, path, query, nil, v)
}

func (c *client) callJSON(ctx context.Context, method, path string, query url.Values, body, v any) ([]byte, error) {
	data, err := c.call(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			return nil, fmt.Errorf("%s %s: decoding the response: %w", method, path, err)
		}
	}
	return data, nil
}

// grantPath is the path of one grant, or of an action on it.
func grantPath(id, verb string) string {
	p := "/v1/grants/" + url.PathEscape(id)
	if verb != "" {
		p += ":" + verb
	}
	return p
}

// errNoCredentials explains what to do when no ID token can be had.
var errNoCredentials = errors.New("no credentials: pass --as EMAIL for a local pipeline, or set JIT_ID_TOKEN, or install and log in to gcloud (docs/cli.md)")
