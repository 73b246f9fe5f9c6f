package localtasks

import (
	"context"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits from docs/google-cloud.md §3.
const (
	// maxScheduleAhead: schedule_time at most 30 days ahead (cloudtasks.pb.go,
	// tasks/docs/quotas).
	maxScheduleAhead = 30 * 24 * time.Hour
	// maxTaskSize: the client doc comment says "The maximum task size is
	// 100KB" (cloud_tasks_client.go CreateTask), the quotas page says 1 MiB;
	// the stricter limit is enforced so what passes here passes there.
	maxTaskSize = 100 * 1024
	// maxURLLength: HttpRequest.url at most 2083 characters after encoding.
	maxURLLength = 2083
	// maxHeaderBytes: "The size of the headers must be less than 80KB."
	maxHeaderBytes = 80 * 1024
	// Dispatch deadline of HTTP tasks: default 10 min, range [15 s, 30 min],
	// truncated to milliseconds (task.pb.go Task.dispatch_deadline).
	defaultDeadline = 10 * time.Minute
	minDeadline     = 15 * time.Second
	maxDeadline     = 30 * time.Minute
)

// CreateTask adds a task to an existing queue.
func (s *Server) CreateTask(_ context.Context, req *cloudtaskspb.CreateTaskRequest) (*cloudtaskspb.Task, error) {
	parent := req.GetParent()
	if err := checkQueueName(parent); err != nil {
		return nil, err
	}
	if req.GetTask() == nil {
		return nil, status.Error(codes.InvalidArgument, "Task is required.")
	}
	pb := proto.CloneOf(req.GetTask())
	// Output-only fields are ignored on input.
	pb.CreateTime, pb.DispatchCount, pb.ResponseCount = nil, 0, 0
	pb.FirstAttempt, pb.LastAttempt, pb.View = nil, nil, cloudtaskspb.Task_VIEW_UNSPECIFIED
	if pb.GetName() != "" {
		queue, _, err := splitTaskName(pb.GetName())
		if err != nil {
			return nil, err
		}
		if queue != parent {
			return nil, status.Errorf(codes.InvalidArgument, msgTaskQueueDiffer, parent, queue)
		}
	}
	if err := validateTarget(pb); err != nil {
		return nil, err
	}
	if err := validateRetryConfig(pb.GetRetryConfig()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if size := proto.Size(req.GetTask()); size > maxTaskSize {
		return nil, status.Errorf(codes.InvalidArgument, "Task size %d bytes exceeds the maximum of %d bytes.", size, maxTaskSize)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[parent]; !ok {
		return nil, status.Error(codes.NotFound, msgQueueNotFound)
	}
	now := s.clock.Now()
	if pb.GetName() == "" {
		for pb.Name = parent + "/tasks/" + newTaskID(); s.reservedLocked(pb.GetName(), now); {
			pb.Name = parent + "/tasks/" + newTaskID()
		}
	} else if s.reservedLocked(pb.GetName(), now) {
		// Task de-duplication (cloudtasks.pb.go CreateTaskRequest.task).
		return nil, status.Error(codes.AlreadyExists, msgTaskExists)
	}
	// schedule_time: unset or past means now; truncated to microseconds;
	// at most 30 days ahead (docs/google-cloud.md §3).
	when := now
	if ts := pb.GetScheduleTime(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "Task.scheduleTime is invalid: %v", err)
		}
		if t := ts.AsTime(); t.After(now) {
			when = t
		}
	}
	if when.Sub(now) > maxScheduleAhead {
		return nil, status.Errorf(codes.InvalidArgument, "Task.scheduleTime %s is more than 30 days in the future.", when.UTC().Format(time.RFC3339Nano))
	}
	pb.ScheduleTime = timestamppb.New(when.Truncate(time.Microsecond))
	pb.CreateTime = timestamppb.New(now.Truncate(time.Second)) // task.pb.go: truncated to the second

	t := &task{pb: pb, queue: parent}
	s.tasks[pb.GetName()] = t
	if err := s.saveLocked(change{tasks: []string{pb.GetName()}}); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.poke()
	return view(pb, req.GetResponseView()), nil
}

// GetTask returns a task that is scheduled or being attempted. A task that
// succeeded, failed permanently or was deleted is NOT_FOUND (GetTask doc,
// cloud_tasks_client.go).
func (s *Server) GetTask(_ context.Context, req *cloudtaskspb.GetTaskRequest) (*cloudtaskspb.Task, error) {
	if _, _, err := splitTaskName(req.GetName()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	return view(t.pb, req.GetResponseView()), nil
}

// DeleteTask deletes a scheduled or dispatched task; its name stays reserved
// for the dedup window. A task that already succeeded or failed permanently
// is gone, so deleting it is NOT_FOUND (DeleteTask doc; the code is assumed,
// docs/google-cloud.md §3 VERIFY). An attempt in flight is not interrupted, but its
// outcome is discarded.
func (s *Server) DeleteTask(_ context.Context, req *cloudtaskspb.DeleteTaskRequest) (*emptypb.Empty, error) {
	if _, _, err := splitTaskName(req.GetName()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.lookupLocked(req.GetName()); err != nil {
		return nil, err
	}
	s.removeLocked(req.GetName())
	if err := s.saveLocked(change{tasks: []string{req.GetName()}}); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.poke()
	return &emptypb.Empty{}, nil
}

// RunTask schedules the task for now and wakes the dispatcher; it returns at
// once, before the attempt. On failure the task is rescheduled by its
// RetryConfig as after any attempt (RunTask doc, cloud_tasks_client.go). A
// task whose attempt is already in flight is returned as is (local choice:
// never two attempts of one task at once).
func (s *Server) RunTask(_ context.Context, req *cloudtaskspb.RunTaskRequest) (*cloudtaskspb.Task, error) {
	if _, _, err := splitTaskName(req.GetName()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	if !t.running {
		t.pb.ScheduleTime = timestamppb.New(s.clock.Now().Truncate(time.Microsecond))
		if err := s.saveLocked(change{tasks: []string{req.GetName()}}); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		s.poke()
	}
	return view(t.pb, req.GetResponseView()), nil
}

// ListTasks lists a queue's tasks in name order (the API promises no order).
func (s *Server) ListTasks(_ context.Context, req *cloudtaskspb.ListTasksRequest) (*cloudtaskspb.ListTasksResponse, error) {
	if err := checkQueueName(req.GetParent()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[req.GetParent()]; !ok {
		return nil, status.Error(codes.NotFound, msgQueueNotFound)
	}
	var names []string
	for _, name := range sortedKeys(s.tasks) {
		if s.tasks[name].queue == req.GetParent() {
			names = append(names, name)
		}
	}
	// ListTasksRequest.page_size: the maximum is 1000, and 0 means the maximum.
	page, next, err := paginate(names, req.GetPageSize(), 1000, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &cloudtaskspb.ListTasksResponse{NextPageToken: next}
	for _, name := range page {
		resp.Tasks = append(resp.Tasks, view(s.tasks[name].pb, req.GetResponseView()))
	}
	return resp, nil
}

// lookupLocked finds a live task, or says NOT_FOUND the way the real service
// does: a different message for a name that existed recently.
func (s *Server) lookupLocked(name string) (*task, error) {
	if t, ok := s.tasks[name]; ok {
		return t, nil
	}
	if until, ok := s.tombstones[name]; ok && s.clock.Now().Before(until) {
		return nil, status.Error(codes.NotFound, msgTaskRecent)
	}
	return nil, status.Error(codes.NotFound, msgTaskNotFound)
}

// reservedLocked reports whether name belongs to a live task or to one that
// ran or was deleted within the dedup window.
func (s *Server) reservedLocked(name string, now time.Time) bool {
	if _, ok := s.tasks[name]; ok {
		return true
	}
	until, ok := s.tombstones[name]
	return ok && now.Before(until)
}

// removeLocked deletes a task and reserves its name for the dedup window.
func (s *Server) removeLocked(name string) {
	delete(s.tasks, name)
	until := s.clock.Now().Add(s.dedupWindow)
	s.tombstones[name] = until
	s.expiry = append(s.expiry, tombstone{name: name, until: until})
}

// view returns a copy of a task in the requested view. BASIC (the default)
// omits the body, which needs FULL ([2nd] googleapis/nodejs-tasks#525:
// GetTask/ListTasks return an empty HTTP body unless response_view is FULL).
func view(pb *cloudtaskspb.Task, v cloudtaskspb.Task_View) *cloudtaskspb.Task {
	out := proto.CloneOf(pb)
	if v == cloudtaskspb.Task_FULL {
		out.View = cloudtaskspb.Task_FULL
		return out
	}
	out.View = cloudtaskspb.Task_BASIC
	if hr := out.GetHttpRequest(); hr != nil {
		hr.Body = nil
	}
	return out
}

// validateTarget checks the HTTP target and fills its defaults (method POST,
// dispatch_deadline 10 min), per target.pb.go HttpRequest and task.pb.go
// (docs/google-cloud.md §3).
func validateTarget(pb *cloudtaskspb.Task) error {
	switch pb.GetMessageType().(type) {
	case *cloudtaskspb.Task_HttpRequest:
	case *cloudtaskspb.Task_AppEngineHttpRequest:
		return status.Error(codes.Unimplemented, "localtasks: App Engine tasks are not supported; use an HttpRequest target")
	default:
		return status.Error(codes.InvalidArgument, "Task.httpRequest is required.")
	}
	hr := pb.GetHttpRequest()
	if hr == nil {
		return status.Error(codes.InvalidArgument, "HttpRequest.url is required.")
	}
	switch {
	case hr.GetUrl() == "":
		return status.Error(codes.InvalidArgument, "HttpRequest.url is required.")
	case !strings.HasPrefix(hr.GetUrl(), "http://") && !strings.HasPrefix(hr.GetUrl(), "https://"):
		return status.Error(codes.InvalidArgument, "HttpTarget.url must start with 'http://' or 'https://'.")
	case encodedLen(hr.GetUrl()) > maxURLLength:
		return status.Errorf(codes.InvalidArgument, "HttpRequest.url must be at most %d characters after encoding.", maxURLLength)
	}
	if u, err := url.Parse(hr.GetUrl()); err != nil || u.Host == "" {
		return status.Errorf(codes.InvalidArgument, "HttpRequest.url %q is not a valid URL.", hr.GetUrl())
	}
	if _, ok := cloudtaskspb.HttpMethod_name[int32(hr.GetHttpMethod())]; !ok {
		return status.Errorf(codes.InvalidArgument, "HttpRequest.httpMethod %d is not valid.", hr.GetHttpMethod())
	}
	if hr.GetHttpMethod() == cloudtaskspb.HttpMethod_HTTP_METHOD_UNSPECIFIED {
		hr.HttpMethod = cloudtaskspb.HttpMethod_POST
	}
	switch hr.GetHttpMethod() {
	case cloudtaskspb.HttpMethod_POST, cloudtaskspb.HttpMethod_PUT, cloudtaskspb.HttpMethod_PATCH:
	default:
		if len(hr.GetBody()) > 0 {
			return status.Errorf(codes.InvalidArgument, "HttpRequest.body is allowed only for POST, PUT and PATCH, not %s.", hr.GetHttpMethod())
		}
	}
	size := 0
	for k, v := range hr.GetHeaders() {
		size += len(k) + len(v)
	}
	if size >= maxHeaderBytes {
		return status.Errorf(codes.InvalidArgument, "HttpRequest.headers are %d bytes; they must be less than 80KB.", size)
	}
	switch auth := hr.GetAuthorizationHeader().(type) {
	case *cloudtaskspb.HttpRequest_OauthToken:
		return status.Error(codes.Unimplemented, "localtasks: OAuth tokens are for *.googleapis.com targets, which are not reachable locally; use an OIDC token")
	case *cloudtaskspb.HttpRequest_OidcToken:
		if auth.OidcToken.GetServiceAccountEmail() == "" {
			return status.Error(codes.InvalidArgument, "OidcToken.serviceAccountEmail is required.")
		}
	}
	d := defaultDeadline
	if dd := pb.GetDispatchDeadline(); dd != nil {
		if err := dd.CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "Task.dispatchDeadline is invalid: %v", err)
		}
		d = dd.AsDuration().Truncate(time.Millisecond)
		if d < minDeadline || d > maxDeadline {
			return status.Errorf(codes.InvalidArgument, "Task.dispatchDeadline must be between %s and %s, got %s.", minDeadline, maxDeadline, d)
		}
	}
	pb.DispatchDeadline = durationpb.New(d)
	return nil
}

// encodedLen is the length of a URL once bytes outside printable ASCII are
// percent-encoded, as Cloud Tasks does before checking the 2083 limit.
func encodedLen(raw string) int {
	n := 0
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f {
			n += 3
		} else {
			n++
		}
	}
	return n
}
