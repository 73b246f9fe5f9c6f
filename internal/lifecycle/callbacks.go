package lifecycle

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lazyregexp"
)

// ExecutionsEndpoint is where Cloud Workflows serves callbacks:
// https://workflowexecutions.googleapis.com/v1/projects/*/locations/*/workflows/*/executions/{execution}/callbacks/{callback}
// (docs/google-cloud.md §4, SendHttpCallback).
const ExecutionsEndpoint = "https://workflowexecutions.googleapis.com"

// Executions is the slice of the Workflows executions client the approval
// and grant functions use to confirm that a callback belongs to the
// execution running a grant (*executions.Client satisfies it).
type Executions interface {
	GetExecution(ctx context.Context, req *executionspb.GetExecutionRequest, opts ...gax.CallOption) (*executionspb.Execution, error)
}

// HTTPCallbacks resumes workflow executions by POSTing JSON to their
// callback URLs: plain HTTP, as on Google Cloud (docs/google-cloud.md §4). It sends
// only to URLs under Endpoint and never follows a redirect, so its
// credentials cannot be sent anywhere else whatever URL it is given.
// Token, if set, gives the bearer token of each call (locally an access
// token of the function's service account); on Google Cloud the Client
// itself carries the function's OAuth credentials.
type HTTPCallbacks struct {
	// Endpoint is the scheme and host of callback URLs: ExecutionsEndpoint
	// on Google Cloud, the local runner's base URL locally. Required.
	Endpoint string
	Client   *http.Client
	Token    func(ctx context.Context) (string, error)
}

// errForeignCallback refuses a callback URL off the executions endpoint.
var errForeignCallback = errors.New("callback URL is not on the workflow executions endpoint")

// Call posts body to url. A finished execution (404) or a callback that
// was delivered already (429) counts as done: the caller is a redelivery.
func (c HTTPCallbacks) Call(ctx context.Context, rawURL string, body any) error {
	if c.Endpoint == "" || !strings.HasPrefix(rawURL, strings.TrimRight(c.Endpoint, "/")+"/v1/projects/") {
		return fmt.Errorf("%w: %q", errForeignCallback, rawURL)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("failed to encode the callback: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("failed to build the callback: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != nil {
		tok, err := c.Token(ctx)
		if err != nil {
			return fmt.Errorf("failed to get a token for the callback: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	client := http.DefaultClient
	if c.Client != nil {
		client = c.Client
	}
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return fmt.Errorf("failed to call back: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300, resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusTooManyRequests:
		return nil
	default:
		return fmt.Errorf("callback answered %s", resp.Status)
	}
}

// idRE is the shape of an execution or callback ID (Google uses UUIDs, the
// local runner random base32; neither needs more).
var idRE = lazyregexp.New(`^[A-Za-z0-9_-]{1,128}$`)

// callbackExecution checks that raw is a callback URL of the lifecycle
// workflow on the executions endpoint and returns its execution ID.
// Commands travel on Pub/Sub, where anyone allowed to publish could
// write any URL: nothing but this shape is ever called.
func (s *core) callbackExecution(raw string) (string, error) {
	prefix := s.executionsURL + "/v1/" + s.workflow + "/executions/"
	rest, ok := strings.CutPrefix(raw, prefix)
	if !ok || s.executionsURL == "" || s.workflow == "" {
		return "", fmt.Errorf("%w: %q is not a callback of %s", errForeignCallback, raw, s.workflow)
	}
	exec, cb, ok := strings.Cut(rest, "/callbacks/")
	if !ok || !idRE.MatchString(exec) || !idRE.MatchString(cb) {
		return "", fmt.Errorf("%w: %q is not …/executions/ID/callbacks/ID", errForeignCallback, raw)
	}
	if u, err := url.Parse(raw); err != nil || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.String() != raw {
		return "", fmt.Errorf("%w: %q is not a plain callback URL", errForeignCallback, raw)
	}
	return exec, nil
}

// errNotOurExecution is a command naming an execution that does not run
// this grant.
var errNotOurExecution = errors.New("the execution does not run this grant")

// verifyExecution asks the Executions API whether execution is a running
// execution of the lifecycle workflow started for grant id: its argument
// is the grant.requested event Eventarc delivered (docs/google-cloud.md §4, "Eventarc
// Pub/Sub → workflow"). Only a transient API failure is returned as
// retryable; anything else wraps errNotOurExecution.
func (s *core) verifyExecution(ctx context.Context, id, execution string) error {
	if s.executions == nil {
		return fmt.Errorf("%w: no executions client to confirm %s", errNotOurExecution, execution)
	}
	name := s.workflow + "/executions/" + execution
	if v, ok := s.verified.Load(name); ok && v == id {
		return nil
	}
	ex, err := s.executions.GetExecution(ctx, &executionspb.GetExecutionRequest{Name: name})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied:
		// The cause is shown, not wrapped: callers must see only
		// errNotOurExecution, never the lookup's gRPC code.
		return fmt.Errorf("%w: %s: %v", errNotOurExecution, name, err) //nolint:errorlint // see above
	default:
		return fmt.Errorf("failed to look up execution %s: %w", name, err)
	}
	if st := ex.GetState(); st != executionspb.Execution_ACTIVE && st != executionspb.Execution_QUEUED {
		return fmt.Errorf("%w: %s is %s", errNotOurExecution, name, st)
	}
	if got := grantOfArgument(ex.GetArgument()); got != id {
		return fmt.Errorf("%w: %s runs grant %q", errNotOurExecution, name, got)
	}
	s.verified.Store(name, id)
	return nil
}

// grantOfArgument reads the grant ID out of an execution argument: the
// messagePublished CloudEvent of a grant.requested message.
func grantOfArgument(arg string) string {
	var ev struct {
		Data struct {
			Message struct {
				Data       string            `json:"data"`
				Attributes map[string]string `json:"attributes"`
			} `json:"message"`
		} `json:"data"`
	}
	if json.Unmarshal([]byte(arg), &ev) != nil || ev.Data.Message.Attributes[events.AttrPrefix+"type"] != events.TypeRequested {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(ev.Data.Message.Data)
	if err != nil {
		return ""
	}
	var d struct {
		GrantID string `json:"grantId"`
	}
	if json.Unmarshal(raw, &d) != nil {
		return ""
	}
	return d.GrantID
}

// commandExecution checks a command's callback URLs and returns the
// execution they belong to, once it is known to run the grant (it is the
// recorded one, or the Executions API confirms it). Whether it claims the
// grant or is a duplicate is the caller's ledger write to decide.
// errNotOurExecution (wrapped) means: refuse the command, call nothing.
func (s *core) commandExecution(ctx context.Context, g *grant.Grant, urls ...string) (string, error) {
	exec := ""
	for _, u := range urls {
		if u == "" {
			continue
		}
		e, err := s.callbackExecution(u)
		if err != nil {
			return "", fmt.Errorf("%w: %w", errNotOurExecution, err)
		}
		if exec != "" && e != exec {
			return "", fmt.Errorf("%w: callbacks of two executions", errNotOurExecution)
		}
		exec = e
	}
	if exec == "" {
		return "", fmt.Errorf("%w: no callback URL", errNotOurExecution)
	}
	if exec != g.Execution {
		if err := s.verifyExecution(ctx, g.ID, exec); err != nil {
			return "", err
		}
	}
	return exec, nil
}

// refuseCommand records a command that names somebody else's callback: a
// security event, acknowledged without any call.
func (s *core) refuseCommand(ctx context.Context, d *events.Data, err error) {
	s.log.WarnContext(ctx, "refused a command whose callback is not the grant's workflow execution",
		"event/type", "security", "grant_id", d.GrantID, "error", err)
}

// callback resumes a workflow execution (the grant's, or a verified
// duplicate); a URL that is not a callback of that execution is never
// called. A finished execution (404)
// or an already-delivered callback (429) is not an error: the handler is
// being redelivered.
func (s *core) callback(ctx context.Context, execution, url string, body any) error {
	if url == "" {
		return nil
	}
	if s.callbacks == nil {
		return errors.New("no callback client configured")
	}
	exec, err := s.callbackExecution(url)
	if err != nil {
		return err
	}
	if exec != execution || execution == "" {
		return fmt.Errorf("%w: %s belongs to execution %s, not %q", errNotOurExecution, url, exec, execution)
	}
	if err := s.callbacks.Call(ctx, url, body); err != nil {
		return fmt.Errorf("failed to resume the workflow: %w", err)
	}
	return nil
}
