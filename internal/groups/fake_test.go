package groups

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/api/option"
)

// fakeIdentity serves the three Cloud Identity Groups REST methods the
// resolver uses, the way the API does (docs/google-cloud.md §8, §11;
// cloudidentity-api.json): groups.lookup, and the transitive searches with
// nextPageToken paging, a required label in the searchTransitiveGroups query,
// 404 for an unknown group key and 403 when the edition lacks the feature.
type fakeIdentity struct {
	// pageSize caps every page, so that small worlds still page.
	pageSize int
	// premium is false for editions without the transitive searches.
	premium bool

	groups map[string]*fakeGroup // by email
	users  map[string]string     // email -> users/ID

	mu      sync.Mutex
	queries []string       // searchTransitiveGroups queries received
	pages   map[string]int // method -> pages served
}

type fakeGroup struct {
	id        string   // groups/ID
	namespace string   // set for identity-mapped groups
	members   []string // user:EMAIL, group:EMAIL, serviceAccount:EMAIL
}

func newFakeIdentity() *fakeIdentity {
	return &fakeIdentity{pageSize: 2, premium: true, groups: map[string]*fakeGroup{}, users: map[string]string{}, pages: map[string]int{}}
}

func (f *fakeIdentity) addGroup(email string, members ...string) {
	f.groups[email] = &fakeGroup{id: fmt.Sprintf("groups/0%dabc", len(f.groups)+1), members: members}
	for _, m := range members {
		typ, e, _ := strings.Cut(m, ":")
		if typ != "group" && f.users[e] == "" {
			f.users[e] = fmt.Sprintf("users/1%05d", len(f.users)+1)
		}
	}
}

// start serves f on loopback and returns a resolver pointed at it.
func (f *fakeIdentity) start(t *testing.T) *CloudIdentity {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	ci, err := NewCloudIdentity(t.Context(), option.WithEndpoint(srv.URL+"/"), option.WithoutAuthentication(), option.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

var (
	transitiveGroupsPath      = regexp.MustCompile(`^/v1/groups/-/memberships:searchTransitiveGroups$`)
	transitiveMembershipsPath = regexp.MustCompile(`^/v1/(groups/[^/]+)/memberships:searchTransitiveMemberships$`)
	// The query form the API documents: member_key_id == '…' && '…' in labels.
	transitiveGroupsQuery = regexp.MustCompile(`^member_key_id == '([^']+)' && '([^']+)' in labels$`)
)

func (f *fakeIdentity) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed")
		return
	}
	q := r.URL.Query()
	switch p := r.URL.Path; {
	case p == "/v1/groups:lookup":
		g := f.groups[strings.ToLower(q.Get("groupKey.id"))]
		if g == nil || q.Get("groupKey.id") == "" {
			writeError(w, http.StatusNotFound, "NOT_FOUND", "Error(4003): Group does not exist.")
			return
		}
		writeJSON(w, map[string]any{"name": g.id})
	case transitiveGroupsPath.MatchString(p):
		if !f.premium {
			writeError(w, http.StatusForbidden, "PERMISSION_DENIED", "Error(2015): This feature is only available to Google Workspace Enterprise Standard, Enterprise Plus, and Enterprise for Education; and Cloud Identity Premium accounts.")
			return
		}
		query := q.Get("query")
		f.mu.Lock()
		f.queries = append(f.queries, query)
		f.mu.Unlock()
		m := transitiveGroupsQuery.FindStringSubmatch(query)
		if m == nil {
			// The query "MUST include member specification AND label(s)".
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.")
			return
		}
		member, label := strings.ToLower(m[1]), m[2]
		var rows []any
		for _, email := range f.sortedGroups() {
			g := f.groups[email]
			if label != discussionForumLabel || !f.reaches(email, member, map[string]bool{}) {
				continue
			}
			key := map[string]string{"id": email}
			if g.namespace != "" {
				key["namespace"] = g.namespace
			}
			rows = append(rows, map[string]any{
				"group":        g.id,
				"groupKey":     key,
				"displayName":  email,
				"labels":       map[string]string{discussionForumLabel: ""},
				"relationType": "DIRECT",
				"roles":        []any{map[string]string{"role": "MEMBER"}},
			})
		}
		f.page(w, r, "searchTransitiveGroups", rows)
	case transitiveMembershipsPath.MatchString(p):
		if !f.premium {
			writeError(w, http.StatusForbidden, "PERMISSION_DENIED", "Error(2015): This feature is only available to Google Workspace Enterprise Standard, Enterprise Plus, and Enterprise for Education; and Cloud Identity Premium accounts.")
			return
		}
		name := transitiveMembershipsPath.FindStringSubmatch(p)[1]
		var group string
		for email, g := range f.groups {
			if g.id == name {
				group = email
			}
		}
		if group == "" {
			writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("Error(2028): Permission denied for resource %s (or it may not exist).", name))
			return
		}
		var rows []any
		for _, m := range f.closure(group, map[string]bool{}) {
			typ, email, _ := strings.Cut(m, ":")
			resource := f.users[email]
			if typ == "group" {
				resource = f.groups[email].id
			}
			rows = append(rows, map[string]any{
				"member":             resource,
				"preferredMemberKey": []any{map[string]string{"id": email}},
				"relationType":       "DIRECT",
				"roles":              []any{map[string]string{"role": "MEMBER"}},
			})
		}
		f.page(w, r, "searchTransitiveMemberships", rows)
	default:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "unknown path "+p)
	}
}

// page serves one page of rows; the token is the offset, opaque to clients.
func (f *fakeIdentity) page(w http.ResponseWriter, r *http.Request, method string, rows []any) {
	size := f.pageSize
	if s, err := strconv.Atoi(r.URL.Query().Get("pageSize")); err == nil && s > 0 && s < size {
		size = s
	}
	offset := 0
	if tok := r.URL.Query().Get("pageToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || err2 != nil || n < 0 || n > len(rows) {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.")
			return
		}
		offset = n
	}
	end := min(offset+size, len(rows))
	out := map[string]any{"memberships": rows[offset:end]}
	if end < len(rows) {
		out["nextPageToken"] = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	f.mu.Lock()
	f.pages[method]++
	f.mu.Unlock()
	writeJSON(w, out)
}

func (f *fakeIdentity) sortedGroups() []string {
	var out []string
	for email := range f.groups {
		out = append(out, email)
	}
	slices.Sort(out)
	return out
}

// reaches reports whether member is in group, directly or indirectly.
func (f *fakeIdentity) reaches(group, member string, seen map[string]bool) bool {
	if seen[group] {
		return false
	}
	seen[group] = true
	for _, m := range f.groups[group].members {
		_, email, _ := strings.Cut(m, ":")
		if email == member {
			return true
		}
		if strings.HasPrefix(m, "group:") && f.reaches(email, member, seen) {
			return true
		}
	}
	return false
}

// closure lists every direct and indirect member of group, groups included.
func (f *fakeIdentity) closure(group string, seen map[string]bool) []string {
	seen[group] = true
	var out []string
	for _, m := range f.groups[group].members {
		if seen[m] {
			continue
		}
		seen[m] = true
		out = append(out, m)
		if email, ok := strings.CutPrefix(m, "group:"); ok && !seen[email] {
			out = append(out, f.closure(email, seen)...)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes a Google API error body, which the client turns into a
// *googleapi.Error.
func writeError(w http.ResponseWriter, code int, status, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": message, "status": status}})
}
