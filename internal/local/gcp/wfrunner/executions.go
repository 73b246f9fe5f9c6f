package wfrunner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	executionspb "cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Register adds the Executions service to s, for the real
// cloud.google.com/go/workflows/executions/apiv1 client.
func (r *Runner) Register(s *grpc.Server) {
	executionspb.RegisterExecutionsServer(s, r)
}

// parseWorkflow checks projects/{p}/locations/{l}/workflows/{w} and returns w.
func (r *Runner) parseWorkflow(parent string) (string, error) {
	prefix := fmt.Sprintf("projects/%s/locations/%s/workflows/", r.cfg.Project, r.cfg.Location)
	w, ok := strings.CutPrefix(parent, prefix)
	if !ok || w == "" || strings.Contains(w, "/") {
		if strings.HasPrefix(parent, "projects/") && strings.Count(parent, "/") == 5 {
			return "", status.Errorf(codes.NotFound, "workflow %q not found", parent)
		}
		return "", status.Errorf(codes.InvalidArgument, "parent %q is not projects/%s/locations/%s/workflows/WORKFLOW", parent, r.cfg.Project, r.cfg.Location)
	}
	return w, nil
}

// CreateExecution starts an execution of the workflow's current revision.
func (r *Runner) CreateExecution(_ context.Context, req *executionspb.CreateExecutionRequest) (*executionspb.Execution, error) {
	w, err := r.parseWorkflow(req.GetParent())
	if err != nil {
		return nil, err
	}
	ex, err := r.create(w, req.GetExecution().GetArgument())
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrInvalidArgument):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	return ex.proto(executionspb.ExecutionView_FULL), nil
}

// GetExecution returns an execution; the FULL view is the default.
func (r *Runner) GetExecution(_ context.Context, req *executionspb.GetExecutionRequest) (*executionspb.Execution, error) {
	ex := r.lookup(req.GetName())
	if ex == nil {
		return nil, status.Errorf(codes.NotFound, "execution %q not found", req.GetName())
	}
	view := req.GetView()
	if view == executionspb.ExecutionView_EXECUTION_VIEW_UNSPECIFIED {
		view = executionspb.ExecutionView_FULL
	}
	return ex.proto(view), nil
}

// ListExecutions lists a workflow's executions, newest first; the BASIC view
// is the default. Filter and order_by are not supported.
func (r *Runner) ListExecutions(_ context.Context, req *executionspb.ListExecutionsRequest) (*executionspb.ListExecutionsResponse, error) {
	w, err := r.parseWorkflow(req.GetParent())
	if err != nil {
		return nil, err
	}
	if req.GetFilter() != "" || req.GetOrderBy() != "" {
		return nil, status.Error(codes.Unimplemented, "filter and order_by are not supported by the local runner")
	}
	r.mu.Lock()
	_, known := r.workflows[w]
	r.mu.Unlock()
	all := r.list(w)
	if !known && len(all) == 0 {
		return nil, status.Errorf(codes.NotFound, "workflow %q not found", req.GetParent())
	}
	view := req.GetView()
	if view == executionspb.ExecutionView_EXECUTION_VIEW_UNSPECIFIED {
		view = executionspb.ExecutionView_BASIC
	}
	size := int(req.GetPageSize())
	limit := 1000
	if view == executionspb.ExecutionView_FULL {
		limit = 100
	}
	if size <= 0 {
		size = 100
	}
	size = min(size, limit)
	start := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > len(all) {
			return nil, status.Errorf(codes.InvalidArgument, "bad page token %q", t)
		}
		start = n
	}
	end := min(start+size, len(all))
	resp := &executionspb.ListExecutionsResponse{}
	for _, ex := range all[start:end] {
		resp.Executions = append(resp.Executions, ex.proto(view))
	}
	if end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// CancelExecution cancels an ACTIVE execution; a sleeping or awaiting
// execution stops at once.
func (r *Runner) CancelExecution(_ context.Context, req *executionspb.CancelExecutionRequest) (*executionspb.Execution, error) {
	ex := r.lookup(req.GetName())
	if ex == nil {
		return nil, status.Errorf(codes.NotFound, "execution %q not found", req.GetName())
	}
	if err := ex.cancelExecution(); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return ex.proto(executionspb.ExecutionView_FULL), nil
}
