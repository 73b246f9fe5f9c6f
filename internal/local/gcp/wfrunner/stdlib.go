package wfrunner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jitpipeline/jit/internal/local/gcp/wfexpr"
)

// callStd runs a standard library call step with evaluated named args.
func (ex *execution) callStd(target string, args map[string]any) (any, error) {
	switch target {
	case "http.get", "http.post", "http.put", "http.patch", "http.delete":
		return ex.httpCall(strings.ToUpper(strings.TrimPrefix(target, "http.")), args)
	case "http.request":
		m, ok := args["method"].(string)
		if !ok {
			return nil, newError("TypeError", "http.request method must be a string")
		}
		return ex.httpCall(strings.ToUpper(m), args)
	case "sys.log":
		return nil, ex.sysLog(args)
	case "sys.now":
		return ex.sysNow()
	case "sys.get_env":
		return ex.getEnv(args["name"], args["default"])
	case "sys.sleep":
		return nil, ex.sysSleep(args["seconds"])
	case "sys.sleep_until":
		return nil, ex.sysSleepUntil(args["time"])
	case "events.create_callback_endpoint":
		return ex.createCallback(args)
	case "events.await_callback":
		return ex.awaitCallback(args)
	case connectorPubSubPublish:
		return ex.effect("connector", func() (any, error) { return ex.r.publish(ex.ctx, args) })
	case connectorTasksCreate:
		return ex.effect("connector", func() (any, error) { return ex.r.createTask(ex.ctx, args) })
	}
	return nil, fmt.Errorf("internal: call target %q has no implementation", target)
}

// sysNow returns seconds since the epoch as a double; journaled, so a
// replayed execution sees the same clock readings.
func (ex *execution) sysNow() (any, error) {
	return ex.effect("sys.now", func() (any, error) {
		return float64(ex.r.cfg.Clock.Now().UnixMicro()) / 1e6, nil
	})
}

// getEnv serves sys.get_env: the documented built-in variables, then
// Config.Env; def (or null) when unset. Only the seven documented names are
// built in, and name and default must be strings ("TypeError: If either name
// or default is not a string") —
// https://cloud.google.com/workflows/docs/reference/stdlib/sys/get_env and
// https://cloud.google.com/workflows/docs/reference/environment-variables.
func (ex *execution) getEnv(name, def any) (any, error) {
	n, ok := name.(string)
	if !ok {
		return nil, newError("TypeError", fmt.Sprintf("sys.get_env name must be a string, got %s", wfexpr.TypeName(name)))
	}
	if _, isStr := def.(string); def != nil && !isStr {
		return nil, newError("TypeError", fmt.Sprintf("sys.get_env default must be a string, got %s", wfexpr.TypeName(def)))
	}
	if ex.rec.Env != nil {
		if v, ok := ex.rec.Env[n]; ok {
			return v, nil
		}
		return def, nil
	}
	// A record from before Env: its get_env results are in the journal.
	return ex.effect("sys.get_env", func() (any, error) {
		if v, ok := ex.r.env(ex.rec)[n]; ok {
			return v, nil
		}
		return def, nil
	})
}

// env is the environment of an execution: the seven built-in variables,
// then Config.Env (which cannot override them).
func (r *Runner) env(rec *record) map[string]string {
	parts := strings.Split(rec.Name, "/")
	env := make(map[string]string, len(r.cfg.Env)+7)
	for k, v := range r.cfg.Env {
		env[k] = v
	}
	for k, v := range map[string]string{
		"GOOGLE_CLOUD_LOCATION":              r.cfg.Location,
		"GOOGLE_CLOUD_PROJECT_ID":            r.cfg.Project,
		"GOOGLE_CLOUD_PROJECT_NUMBER":        r.cfg.ProjectNumber,
		"GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME":  r.cfg.ServiceAccount,
		"GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID": parts[len(parts)-1],
		"GOOGLE_CLOUD_WORKFLOW_ID":           rec.Workflow,
		"GOOGLE_CLOUD_WORKFLOW_REVISION_ID":  rec.RevisionID,
	} {
		env[k] = v
	}
	return env
}

// sysLog writes sys.log output to the logger; journaled so a replay does not
// log twice.
func (ex *execution) sysLog(args map[string]any) error {
	_, err := ex.effect("sys.log", func() (any, error) {
		sev, _ := args["severity"].(string)
		if sev == "" {
			sev = "DEFAULT"
		}
		level := slog.LevelInfo
		switch strings.ToUpper(sev) {
		case "DEBUG":
			level = slog.LevelDebug
		case "WARNING":
			level = slog.LevelWarn
		case "ERROR", "CRITICAL", "ALERT", "EMERGENCY":
			level = slog.LevelError
		}
		msg := ""
		attrs := []any{"execution", ex.rec.Name, "step", ex.curStep, "workflow_severity", strings.ToUpper(sev)}
		if t, ok := args["text"]; ok {
			if s, isStr := t.(string); isStr {
				msg = s
			} else if b, err := encodeJSON(t); err == nil {
				msg = string(b)
			}
		}
		for _, k := range []string{"data", "json"} {
			if d, ok := args[k]; ok {
				attrs = append(attrs, k, d)
				if msg == "" {
					if b, err := encodeJSON(d); err == nil {
						msg = string(b)
					}
				}
			}
		}
		ex.r.cfg.Logger.Log(ex.ctx, level, msg, attrs...)
		return nil, nil
	})
	return err
}

func (ex *execution) sysSleep(seconds any) error {
	s, ok := toFloat(seconds)
	if !ok {
		return newError("TypeError", fmt.Sprintf("sys.sleep seconds must be a number, got %s", wfexpr.TypeName(seconds)))
	}
	if s < 0 || s > maxSleepSeconds {
		return newError("ValueError", fmt.Sprintf("sys.sleep seconds must be between 0 and %d, got %v", maxSleepSeconds, s))
	}
	return ex.sleepFor("sleep", s)
}

// sysSleepUntil: TypeError if time is not a string, ValueError if it is not
// ISO 8601 or more than a year ahead (docs/google-cloud.md §4, stdlib sys.sleep_until).
func (ex *execution) sysSleepUntil(v any) error {
	s, ok := v.(string)
	if !ok {
		return newError("TypeError", fmt.Sprintf("sys.sleep_until time must be a string, got %s", wfexpr.TypeName(v)))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return newError("ValueError", fmt.Sprintf("sys.sleep_until time %q is not ISO 8601: %v", s, err))
	}
	if t.After(ex.r.cfg.Clock.Now().Add(maxSleepSeconds * time.Second)) {
		return newError("ValueError", fmt.Sprintf("sys.sleep_until time %q is more than one year ahead", s))
	}
	d, err := ex.deadline("sleep", func() time.Time { return t })
	if err != nil {
		return err
	}
	return ex.waitUntil(d)
}

// httpCall implements http.get/post/put/patch/delete/request.
func (ex *execution) httpCall(method string, args map[string]any) (any, error) {
	req, timeout, err := ex.buildRequest(method, args)
	if err != nil {
		return nil, err
	}
	return ex.effect("http", func() (any, error) {
		ctx, cancel := context.WithTimeout(ex.ctx, timeout)
		defer cancel()
		resp, err := ex.r.cfg.HTTPClient.Do(req.WithContext(ctx)) //nolint:gosec // G704: http.* calls the URL the workflow names, as Google Workflows does
		if err != nil {
			return nil, classifyNetError(ctx, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, classifyNetError(ctx, err)
		}
		headers := map[string]any{}
		for k, vs := range resp.Header {
			headers[k] = strings.Join(vs, ", ")
		}
		out := map[string]any{"code": int64(resp.StatusCode), "headers": headers, "body": decodeBody(resp.Header.Get("Content-Type"), body)}
		if resp.StatusCode >= 400 {
			out["message"] = fmt.Sprintf("HTTP server responded with error code %d", resp.StatusCode)
			out["tags"] = []any{"HttpError"}
			return nil, &raised{value: out}
		}
		return out, nil
	})
}

const (
	defaultHTTPTimeout = 300.0
	maxHTTPTimeout     = 1800.0
)

func (ex *execution) buildRequest(method string, args map[string]any) (*http.Request, time.Duration, error) {
	raw, ok := args["url"].(string)
	if !ok {
		return nil, 0, newError("TypeError", fmt.Sprintf("url must be a string, got %s", wfexpr.TypeName(args["url"])))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, 0, newError("ValueError", fmt.Sprintf("url %q is not an http(s) URL", raw))
	}
	if q, ok := args["query"]; ok && q != nil {
		qm, ok := q.(map[string]any)
		if !ok {
			return nil, 0, newError("TypeError", "query must be a map")
		}
		vals := u.Query()
		for _, k := range sortedMapKeys(qm) {
			items := []any{qm[k]}
			if l, isList := qm[k].([]any); isList {
				items = l
			}
			for _, it := range items {
				s, err := scalarString(it)
				if err != nil {
					return nil, 0, err
				}
				vals.Add(k, s)
			}
		}
		u.RawQuery = vals.Encode()
	}
	header := http.Header{}
	if h, ok := args["headers"]; ok && h != nil {
		hm, ok := h.(map[string]any)
		if !ok {
			return nil, 0, newError("TypeError", "headers must be a map of strings")
		}
		for k, v := range hm {
			s, err := scalarString(v)
			if err != nil {
				return nil, 0, err
			}
			header.Set(k, s)
		}
	}
	var body []byte
	if b, ok := args["body"]; ok && b != nil {
		body, err = encodeBody(header, b)
		if err != nil {
			return nil, 0, err
		}
	}
	timeout := defaultHTTPTimeout
	if t, ok := args["timeout"]; ok && t != nil {
		f, ok := toFloat(t)
		if !ok || f <= 0 || f > maxHTTPTimeout {
			return nil, 0, newError("ValueError", fmt.Sprintf("timeout must be a number of seconds in (0, %v]", maxHTTPTimeout))
		}
		timeout = f
	}
	if a, ok := args["auth"]; ok && a != nil {
		if err := ex.authorize(header, a, u); err != nil {
			return nil, 0, err
		}
	}
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body)) //nolint:gosec // G704: http.* calls the URL the workflow names, as Google Workflows does
	if err != nil {
		return nil, 0, newError("ValueError", fmt.Sprintf("bad request: %v", err))
	}
	req.Header = header
	return req, time.Duration(timeout * float64(time.Second)), nil
}

// authorize adds an OIDC ID token for the workflow's service account. The
// audience defaults to the URL without its query, which is what receivers
// such as Cloud Run expect (docs/google-cloud.md §3, the query pitfall).
func (ex *execution) authorize(h http.Header, a any, u *url.URL) error {
	am, ok := a.(map[string]any)
	if !ok {
		return newError("TypeError", "auth must be a map")
	}
	typ, _ := am["type"].(string)
	if typ != "OIDC" {
		return newError("ValueError", fmt.Sprintf("auth type %q is not supported by the local runner (only OIDC)", typ))
	}
	if ex.r.cfg.Signer == nil {
		return newError("ValueError", "auth type OIDC needs a Signer in the runner config")
	}
	aud, _ := am["audience"].(string)
	if aud == "" {
		base := *u
		base.RawQuery, base.Fragment = "", ""
		aud = base.String()
	}
	tok, err := ex.r.cfg.Signer.IDToken(ex.r.cfg.ServiceAccount, aud)
	if err != nil {
		return fmt.Errorf("failed to mint ID token: %w", err)
	}
	h.Set("Authorization", "Bearer "+tok)
	return nil
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", newError("TypeError", fmt.Sprintf("expected a string, number or boolean, got %s", wfexpr.TypeName(v)))
}

// encodeBody follows http.request: bytes are sent as is
// (application/octet-stream by default), other values JSON-encoded as
// application/json unless a Content-Type says otherwise.
func encodeBody(h http.Header, b any) ([]byte, error) {
	ct := h.Get("Content-Type")
	if raw, ok := b.([]byte); ok {
		if ct == "" {
			h.Set("Content-Type", "application/octet-stream")
		}
		return raw, nil
	}
	switch {
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		m, ok := b.(map[string]any)
		if !ok {
			if s, isStr := b.(string); isStr {
				return []byte(s), nil
			}
			return nil, newError("TypeError", "a form body must be a map")
		}
		vals := url.Values{}
		for k, v := range m {
			s, err := scalarString(v)
			if err != nil {
				return nil, err
			}
			vals.Set(k, s)
		}
		return []byte(vals.Encode()), nil
	case strings.HasPrefix(ct, "text/"):
		if s, ok := b.(string); ok {
			return []byte(s), nil
		}
	case ct == "":
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	return encodeJSON(b)
}

// decodeBody turns a response body into a value: JSON is decoded, text is a
// string, anything else stays bytes.
func decodeBody(ct string, body []byte) any {
	if strings.Contains(ct, "json") {
		if v, err := decodeJSON(body); err == nil {
			return v
		}
	}
	if len(body) == 0 {
		return ""
	}
	if ct == "" || strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "xml") {
		if utf8.Valid(body) {
			return string(body)
		}
	}
	return body
}

// classifyNetError maps a transport failure to the Workflows exception:
// TimeoutError, ConnectionFailedError (no connection made) or
// ConnectionError (the connection broke).
func classifyNetError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return newError("TimeoutError", fmt.Sprintf("HTTP request timed out: %v", err))
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return newError("ConnectionFailedError", fmt.Sprintf("connection failed: %v", err))
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return newError("ConnectionFailedError", fmt.Sprintf("connection failed: %v", err))
	}
	return newError("ConnectionError", fmt.Sprintf("connection error: %v", err))
}

// Callbacks.

func (ex *execution) callbackPath(id string) string {
	return "/v1/" + ex.rec.Name + "/callbacks/" + id
}

var callbackMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true, "OPTIONS": true, "PATCH": true}

// createCallback serves events.create_callback_endpoint: the endpoint id is
// journaled, so a resumed execution keeps the same URL.
func (ex *execution) createCallback(args map[string]any) (any, error) {
	method := "POST"
	if m, ok := args["http_callback_method"]; ok && m != nil {
		s, isStr := m.(string)
		if !isStr {
			return nil, newError("TypeError", "http_callback_method must be a string")
		}
		method = strings.ToUpper(s)
	}
	if !callbackMethods[method] {
		return nil, newError("ValueError", fmt.Sprintf("http_callback_method %q is not one of GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH", method))
	}
	e, err := ex.replay("callback")
	if err != nil {
		return nil, err
	}
	if e != nil {
		return e.outcome()
	}
	id := newID()
	v := map[string]any{"url": ex.r.cfg.CallbackBaseURL + ex.callbackPath(id)}
	err = ex.append(entry{Kind: "callback", Value: &storedValue{v}}, id, func(rec *record) {
		rec.Callbacks[id] = &callbackRec{Method: method}
	})
	if err != nil {
		return nil, err
	}
	return wfexpr.Copy(v), nil
}

// awaitCallback serves events.await_callback: the deadline is journaled
// first, so a resumed await keeps it; the payload consumed is journaled and
// removed from the pending queue in one durable write.
func (ex *execution) awaitCallback(args map[string]any) (any, error) {
	cb, ok := args["callback"].(map[string]any)
	if !ok {
		return nil, newError("TypeError", "callback must be the map returned by events.create_callback_endpoint")
	}
	u, _ := cb["url"].(string)
	id := u[strings.LastIndex(u, "/")+1:]
	ex.mu.Lock()
	_, known := ex.rec.Callbacks[id]
	ex.mu.Unlock()
	if !known || !strings.HasSuffix(u, ex.callbackPath(id)) {
		return nil, newError("ValueError", fmt.Sprintf("callback %q does not belong to this execution", u))
	}
	timeout := 43200.0 // default 12 h (docs/google-cloud.md §4)
	if t, ok := args["timeout"]; ok && t != nil {
		f, isNum := toFloat(t)
		if !isNum {
			return nil, newError("TypeError", "timeout must be a number of seconds")
		}
		if f < 0 {
			return nil, newError("ValueError", "timeout must not be negative")
		}
		timeout = f
	}
	deadline, err := ex.deadline("await", func() time.Time { return ex.r.cfg.Clock.Now().Add(fromSeconds(timeout)) })
	if err != nil {
		return nil, err
	}
	e, err := ex.replay("await_result")
	if err != nil {
		return nil, err
	}
	if e != nil {
		return e.outcome()
	}
	var over error // the execution's year ends before the timeout
	if lim := ex.limit(); deadline.After(lim) {
		deadline, over = lim, errDurationExceeded
	}
	timer := ex.r.cfg.Clock.NewTimer(deadline.Sub(ex.r.cfg.Clock.Now()))
	defer timer.Stop()
	for {
		var got *storedValue
		ex.mu.Lock()
		if c := ex.rec.Callbacks[id]; c != nil && len(c.Pending) > 0 {
			p := c.Pending[0]
			got = &p
		}
		ex.mu.Unlock()
		if got != nil {
			err := ex.append(entry{Kind: "await_result", Value: got}, id, func(rec *record) {
				c := rec.Callbacks[id]
				c.Pending = c.Pending[1:]
			})
			if err != nil {
				return nil, err
			}
			return wfexpr.Copy(got.v), nil
		}
		select {
		case <-ex.signal:
		case <-timer.C():
			if over != nil {
				return nil, over
			}
			tErr := newError("TimeoutError", fmt.Sprintf("timed out after %v seconds waiting for callback %s", timeout, u))
			if err := ex.append(entry{Kind: "await_result", Err: &storedValue{tErr.value}}, "", nil); err != nil {
				return nil, err
			}
			return nil, tErr
		case <-ex.ctx.Done():
			return nil, errStopped
		}
	}
}

// deliver stores a callback request for the execution. It answers an HTTP
// status: 200 accepted, 404 unknown or finished, 405 wrong method, 429 a
// previous payload is still unconsumed (docs/google-cloud.md §4 [2nd]).
func (ex *execution) deliver(id string, r *http.Request, body []byte) (int, string) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.rec.State != stateActive {
		return http.StatusNotFound, "execution is not active"
	}
	c := ex.rec.Callbacks[id]
	if c == nil {
		return http.StatusNotFound, "callback not found"
	}
	if r.Method != c.Method {
		return http.StatusMethodNotAllowed, fmt.Sprintf("callback expects %s", c.Method)
	}
	if len(c.Pending) > 0 {
		return http.StatusTooManyRequests, "a previous callback has not been processed yet"
	}
	headers := map[string]any{}
	for k, vs := range r.Header {
		headers[k] = strings.Join(vs, ", ")
	}
	query := map[string]any{}
	for k, vs := range r.URL.Query() {
		l := make([]any, len(vs))
		for i, v := range vs {
			l[i] = v
		}
		query[k] = l
	}
	var bv any
	if len(body) > 0 {
		if v, err := decodeJSON(body); err == nil {
			bv = v
		} else if utf8.Valid(body) {
			bv = string(body)
		} else {
			bv = body
		}
	}
	payload := map[string]any{
		"http_request": map[string]any{
			"body": bv, "headers": headers, "query": query, "method": r.Method, "url": r.URL.RequestURI(),
		},
		"received_time": ex.r.cfg.Clock.Now().UTC().Format(time.RFC3339Nano),
		"type":          "HTTP",
	}
	c.Pending = append(c.Pending, storedValue{payload})
	if err := ex.saveLocked(saveSet{callbacks: []string{id}}); err != nil {
		c.Pending = c.Pending[:len(c.Pending)-1]
		return http.StatusInternalServerError, err.Error()
	}
	select {
	case ex.signal <- struct{}{}:
	default:
	}
	return http.StatusOK, ""
}

// CallbackHandler serves callback URLs:
// /v1/projects/{p}/locations/{l}/workflows/{w}/executions/{e}/callbacks/{id}.
func (r *Runner) CallbackHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rest, ok := strings.CutPrefix(req.URL.Path, "/v1/")
		i := strings.LastIndex(rest, "/callbacks/")
		if !ok || i < 0 {
			writeStatus(w, http.StatusNotFound, "not a callback URL")
			return
		}
		name, id := rest[:i], rest[i+len("/callbacks/"):]
		if r.cfg.AuthorizeCallback != nil {
			if err := r.cfg.AuthorizeCallback(req); err != nil {
				code := http.StatusForbidden
				if errors.Is(err, ErrUnauthenticated) {
					code = http.StatusUnauthorized
				}
				writeStatus(w, code, err.Error())
				return
			}
		}
		ex := r.lookup(name)
		if ex == nil {
			writeStatus(w, http.StatusNotFound, "execution not found")
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxArgumentBytes*16+1))
		if err != nil {
			writeStatus(w, http.StatusBadRequest, err.Error())
			return
		}
		code, msg := ex.deliver(id, req, body)
		if code == http.StatusMethodNotAllowed {
			ex.mu.Lock()
			if c := ex.rec.Callbacks[id]; c != nil {
				w.Header().Set("Allow", c.Method)
			}
			ex.mu.Unlock()
		}
		writeStatus(w, code, msg)
	})
}

func writeStatus(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if code == http.StatusOK {
		_, _ = w.Write([]byte("{}"))
		return
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": http.StatusText(code)}})
	_, _ = w.Write(b)
}
