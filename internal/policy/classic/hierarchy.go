package classic

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"cloud.google.com/go/resourcemanager/apiv3/resourcemanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
)

// Hierarchy lists the direct children of a folder or organization: what
// Walk needs to expand a scope into the resources whose policies hold
// eligible bindings. Finding them this way, rather than with Policy
// Analyzer as JIT Access does, needs no Security Command Center
// subscription and no long-running analysis (docs/jit-access.md).
type Hierarchy interface {
	// Folders returns the names (folders/N) of parent's child folders.
	Folders(ctx context.Context, parent string) ([]string, error)
	// Projects returns the names (projects/ID) of parent's child projects.
	Projects(ctx context.Context, parent string) ([]string, error)
}

// ResourceManager is the Hierarchy of Resource Manager v3: ListFolders
// and ListProjects, which need resourcemanager.folders.list and
// resourcemanager.projects.list on the parent.
type ResourceManager struct {
	FolderClient  *resourcemanager.FoldersClient
	ProjectClient *resourcemanager.ProjectsClient
}

// Folders lists parent's child folders, every page.
func (r *ResourceManager) Folders(ctx context.Context, parent string) ([]string, error) {
	it := r.FolderClient.ListFolders(ctx, &resourcemanagerpb.ListFoldersRequest{Parent: parent, PageSize: 1000}, quotaRetry)
	names, err := collect(it.Next, (*resourcemanagerpb.Folder).GetName)
	if err != nil {
		return nil, fmt.Errorf("failed to list the folders of %s: %w", parent, err)
	}
	return names, nil
}

// Projects lists parent's child projects, every page, by project ID.
func (r *ResourceManager) Projects(ctx context.Context, parent string) ([]string, error) {
	it := r.ProjectClient.ListProjects(ctx, &resourcemanagerpb.ListProjectsRequest{Parent: parent, PageSize: 1000}, quotaRetry)
	names, err := collect(it.Next, func(p *resourcemanagerpb.Project) string { return "projects/" + p.GetProjectId() })
	if err != nil {
		return nil, fmt.Errorf("failed to list the projects of %s: %w", parent, err)
	}
	return names, nil
}

// quotaRetry retries a Resource Manager call refused for quota
// (RESOURCE_EXHAUSTED) or unavailability, with backoff.
var quotaRetry = gax.WithRetry(func() gax.Retryer {
	return gax.OnCodes([]codes.Code{codes.ResourceExhausted, codes.Unavailable}, gax.Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2})
})

// collect drains an iterator of the Google client library into names.
func collect[T any](next func() (T, error), name func(T) string) ([]string, error) {
	var names []string
	for {
		v, err := next()
		if errors.Is(err, iterator.Done) {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names = append(names, name(v))
	}
}

// Walk expands scope (projects/ID, folders/N, organizations/N) into every
// resource at or below it, each once, sorted: the scope's own resources,
// and under each folder or organization its folders and projects, all
// the way down.
func Walk(ctx context.Context, h Hierarchy, scope []string) ([]string, error) {
	parents, err := walkTree(ctx, h, scope)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(parents))
	for r := range parents {
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}

// walkTree is Walk's breadth-first search, keeping each resource's parent
// ("" for the scope's own resources): the ancestors whose eligible
// bindings a project inherits.
func walkTree(ctx context.Context, h Hierarchy, scope []string) (map[string]string, error) {
	parents := map[string]string{}
	queue := []string{}
	for _, s := range scope {
		if _, seen := parents[s]; !seen {
			parents[s] = ""
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if strings.HasPrefix(r, "projects/") {
			continue
		}
		if !strings.HasPrefix(r, "folders/") && !strings.HasPrefix(r, "organizations/") {
			return nil, fmt.Errorf("scope: %q is not projects/ID, folders/N or organizations/N", r)
		}
		folders, err := h.Folders(ctx, r)
		if err != nil {
			return nil, err
		}
		projects, err := h.Projects(ctx, r)
		if err != nil {
			return nil, err
		}
		for _, c := range append(folders, projects...) {
			// A resource named in the scope and found below another
			// scope resource is inherited into from above too.
			if p, seen := parents[c]; !seen || p == "" {
				if !seen {
					queue = append(queue, c)
				}
				parents[c] = r
			}
		}
	}
	return parents, nil
}
