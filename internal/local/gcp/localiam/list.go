package localiam

import (
	"context"
	"encoding/base64"
	"sort"
	"strconv"

	"cloud.google.com/go/resourcemanager/apiv3/resourcemanagerpb"
)

// Listing the hierarchy as Resource Manager v3 does (docs/google-cloud.md
// §2): ListProjects and ListFolders return the direct children of a
// parent folder or organization, need resourcemanager.projects.list or
// resourcemanager.folders.list on the parent, and page with an opaque
// token. The order is by name here; Google documents none, so callers must
// not rely on it.
const (
	// defaultPageSize and maxPageSize: Google says only that it picks a
	// default and may return fewer than asked. VERIFY.
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (p projectsServer) ListProjects(ctx context.Context, req *resourcemanagerpb.ListProjectsRequest) (*resourcemanagerpb.ListProjectsResponse, error) {
	page, next, err := p.s.children(ctx, req.GetParent(), kindProject, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &resourcemanagerpb.ListProjectsResponse{NextPageToken: next}
	for _, r := range page {
		resp.Projects = append(resp.Projects, &resourcemanagerpb.Project{
			Name: "projects/" + strconv.FormatInt(r.number, 10), ProjectId: r.id, Parent: r.parent,
			DisplayName: r.id, State: resourcemanagerpb.Project_ACTIVE,
		})
	}
	return resp, nil
}

func (f foldersServer) ListFolders(ctx context.Context, req *resourcemanagerpb.ListFoldersRequest) (*resourcemanagerpb.ListFoldersResponse, error) {
	page, next, err := f.s.children(ctx, req.GetParent(), kindFolder, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &resourcemanagerpb.ListFoldersResponse{NextPageToken: next}
	for _, r := range page {
		resp.Folders = append(resp.Folders, &resourcemanagerpb.Folder{
			Name: r.name(), Parent: r.parent, DisplayName: r.id, State: resourcemanagerpb.Folder_ACTIVE,
		})
	}
	return resp, nil
}

// children returns one page of parent's direct children of kind k, and
// the token of the next page ("" after the last).
func (s *Server) children(ctx context.Context, parent string, k kind, size int32, token string) ([]*resource, string, error) {
	pk, _, err := splitName(parent)
	if err != nil || (pk != kindFolder && pk != kindOrganization) {
		return nil, "", invalid("Invalid parent %q: want folders/{id} or organizations/{id}.", parent)
	}
	if size < 0 {
		return nil, "", invalid("page_size must not be negative, got %d.", size)
	}
	if size == 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	after := ""
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(b) == 0 {
			return nil, "", invalid("Invalid page_token.")
		}
		after = string(b)
	}
	p, err := s.authorizeFor(ctx, pk, parent, k.permission("list"))
	if err != nil {
		return nil, "", err
	}
	s.mu.RLock()
	var all []*resource
	for _, r := range s.byName {
		if r.kind == k && r.parent == p.name() && r.name() > after {
			all = append(all, r)
		}
	}
	s.mu.RUnlock()
	sort.Slice(all, func(i, j int) bool { return all[i].name() < all[j].name() })
	if len(all) <= int(size) {
		return all, "", nil
	}
	page := all[:size]
	return page, base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].name())), nil
}
