package classic_test

import (
	"context"
	"fmt"
	"testing"

	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
	"github.com/jitpipeline/jit/internal/policy/classic"
)

// hierarchy serves an organization with two folders (one nested), 1,005
// projects under one folder — more than a page of ListProjects — and a
// project elsewhere, through the real Resource Manager clients.
func hierarchy(t *testing.T) (*classic.ResourceManager, *localiam.Server) {
	t.Helper()
	srv, err := localiam.New(localiam.Config{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{
		srv.AddOrganization("1"),
		srv.AddFolder("10", "organizations/1"),
		srv.AddFolder("11", "folders/10"),
		srv.AddFolder("20", "organizations/1"),
		srv.AddProject("top-project", 5, "organizations/1"),
		srv.AddProject("nested", 6, "folders/11"),
		srv.AddProject("other-project", 7, "folders/20"),
	}
	for i := range 1005 {
		steps = append(steps, srv.AddProject(fmt.Sprintf("bulk-%04d", i), int64(1000+i), "folders/10"))
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
	g, err := loopback.ServeGRPC("", srv.Register)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	ctx := context.Background()
	folders, err := resourcemanager.NewFoldersClient(ctx, g.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	projects, err := resourcemanager.NewProjectsClient(ctx, g.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { folders.Close(); projects.Close() })
	return &classic.ResourceManager{FolderClient: folders, ProjectClient: projects}, srv
}

func TestWalk(t *testing.T) {
	t.Parallel()
	rm, _ := hierarchy(t)
	ctx := t.Context()

	got, err := classic.Walk(ctx, rm, []string{"folders/10", "projects/other-project", "folders/10"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+1+1+1005+1 { // folders/10, folders/11, nested, the bulk, other
		t.Fatalf("walked %d resources, want %d", len(got), 1009)
	}
	want := []string{"folders/10", "folders/11", "projects/bulk-0000"}
	if diff := cmp.Diff(want, got[:3]); diff != "" {
		t.Errorf("first resources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"projects/bulk-1004", "projects/nested", "projects/other-project"}, got[len(got)-3:]); diff != "" {
		t.Errorf("last resources (-want +got):\n%s", diff)
	}

	all, err := classic.Walk(ctx, rm, []string{"organizations/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1+3+1008 {
		t.Errorf("the organization holds %d resources, want %d", len(all), 1012)
	}
}

func TestWalkErrors(t *testing.T) {
	t.Parallel()
	rm, _ := hierarchy(t)
	for _, tc := range []struct {
		scope []string
		code  codes.Code
	}{
		{[]string{"folders/99"}, codes.PermissionDenied}, // unknown: Google says denied, or may not exist
		{[]string{"buckets/x"}, codes.OK},                // refused before any call
	} {
		_, err := classic.Walk(t.Context(), rm, tc.scope)
		if err == nil {
			t.Errorf("Walk(%v) succeeded", tc.scope)
			continue
		}
		if tc.code != codes.OK && status.Code(err) != tc.code {
			t.Errorf("Walk(%v): %v, want %v", tc.scope, err, tc.code)
		}
	}
}

// The local Resource Manager lists as Google does: direct children only,
// a parent required, pages joined by the client.
func TestListChildren(t *testing.T) {
	t.Parallel()
	rm, _ := hierarchy(t)
	ctx := t.Context()
	folders, err := rm.Folders(ctx, "organizations/1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"folders/10", "folders/20"}, folders); diff != "" {
		t.Errorf("organization's folders (-want +got):\n%s", diff)
	}
	projects, err := rm.Projects(ctx, "folders/10")
	if err != nil {
		t.Fatal(err)
	}
	if len(projects) != 1005 {
		t.Errorf("folders/10 has %d direct projects, want 1005 (nested ones are not its children)", len(projects))
	}
	if _, err := rm.Projects(ctx, "projects/top-project"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("listing under a project: %v, want InvalidArgument", err)
	}
}
