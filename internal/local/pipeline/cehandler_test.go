package pipeline

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

func ceRequest(ctx context.Context, t *testing.T, url, id string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-source": "//test", "ce-type": "dev.test.v1", "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	return req
}

// The statuses functions-framework-go answers a push with. (The race
// the handler avoids, a request abandoned between the SDK's send and its
// taker, is not reproducible on demand; TestConcurrentGrants hit it.)
func TestCloudEventHandlerStatuses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(cloudEventHandler(func(_ context.Context, e cloudevents.Event) error {
		if e.ID() == "fail" {
			return context.DeadlineExceeded
		}
		return nil
	}))
	defer srv.Close()
	for _, tc := range []struct {
		id   string
		want int
	}{{"ok", 200}, {"fail", 500}, {"", 400}} {
		resp, err := http.DefaultClient.Do(ceRequest(t.Context(), t, srv.URL, tc.id))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("event %q: status %d, want %d", tc.id, resp.StatusCode, tc.want)
		}
	}
}
