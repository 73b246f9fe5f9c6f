package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// HTTPCallbacks resumes workflow executions by POSTing JSON to their
// callback URLs: plain HTTP, as on Google Cloud (gcp-facts §4). Token, if
// set, gives the bearer token of each call (locally an ID token of the
// function's service account); on Google Cloud the Client itself carries
// the function's OAuth credentials.
type HTTPCallbacks struct {
	Client *http.Client
	Token  func(ctx context.Context) (string, error)
}

// Call posts body to url. A finished execution (404) or a callback that
// was delivered already (429) counts as done: the caller is a redelivery.
func (c HTTPCallbacks) Call(ctx context.Context, url string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("failed to encode the callback: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
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
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
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
