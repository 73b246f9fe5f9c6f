package localtasks

import (
	"context"
	"encoding/base64"
	"strings"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// CreateQueue creates a queue. The parent must be a location, the queue name
// must be under it, and a queue of that name must not exist (ALREADY_EXISTS).
func (s *Server) CreateQueue(_ context.Context, req *cloudtaskspb.CreateQueueRequest) (*cloudtaskspb.Queue, error) {
	if err := checkLocation(req.GetParent()); err != nil {
		return nil, err
	}
	in := req.GetQueue()
	if err := checkQueueName(in.GetName()); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(in.GetName(), req.GetParent()+"/queues/") {
		return nil, status.Errorf(codes.InvalidArgument, "The queue name %q is not in the location %q.", in.GetName(), req.GetParent())
	}
	if err := validateRetryConfig(in.GetRetryConfig()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := validateRateLimits(in.GetRateLimits()); err != nil {
		return nil, err
	}
	if in.GetAppEngineRoutingOverride() != nil || in.GetHttpTarget() != nil {
		return nil, status.Error(codes.Unimplemented, "localtasks: queue-level App Engine routing and HTTP target overrides are not supported")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[in.GetName()]; ok {
		return nil, status.Error(codes.AlreadyExists, msgQueueExists)
	}
	q := s.newQueue(in)
	s.queues[q.GetName()] = q
	if err := s.saveLocked(change{queues: []string{q.GetName()}}); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return proto.CloneOf(q), nil
}

// GetQueue returns a queue, with the defaults filled in as the real service
// returns them.
func (s *Server) GetQueue(_ context.Context, req *cloudtaskspb.GetQueueRequest) (*cloudtaskspb.Queue, error) {
	if err := checkQueueName(req.GetName()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[req.GetName()]
	if !ok {
		return nil, status.Error(codes.NotFound, msgQueueNotFound)
	}
	return proto.CloneOf(q), nil
}

// ListQueues lists the queues of a location in name order. Filters are not
// supported and are refused rather than ignored.
func (s *Server) ListQueues(_ context.Context, req *cloudtaskspb.ListQueuesRequest) (*cloudtaskspb.ListQueuesResponse, error) {
	if err := checkLocation(req.GetParent()); err != nil {
		return nil, err
	}
	if req.GetFilter() != "" {
		return nil, status.Error(codes.Unimplemented, "localtasks: ListQueues filters are not supported")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, name := range sortedKeys(s.queues) {
		if strings.HasPrefix(name, req.GetParent()+"/queues/") {
			names = append(names, name)
		}
	}
	// ListQueuesRequest.page_size: the maximum is 9800, and 0 means the maximum.
	page, next, err := paginate(names, req.GetPageSize(), 9800, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &cloudtaskspb.ListQueuesResponse{NextPageToken: next}
	for _, name := range page {
		resp.Queues = append(resp.Queues, proto.CloneOf(s.queues[name]))
	}
	return resp, nil
}

// newQueue completes a queue as CreateQueue stores it.
func (s *Server) newQueue(in *cloudtaskspb.Queue) *cloudtaskspb.Queue {
	q := proto.CloneOf(in)
	q.RetryConfig = mergeRetry(in.GetRetryConfig(), s.retry)
	q.RateLimits = mergeRateLimits(in.GetRateLimits())
	q.State = cloudtaskspb.Queue_RUNNING
	q.PurgeTime = nil
	return q
}

// checkLocation accepts "projects/P/locations/L". Real Cloud Tasks answers an
// unparsable parent with PERMISSION_DENIED, because it resolves the project
// before anything else ([2nd] conformance golden, see names.go).
func checkLocation(parent string) error {
	if !locationRE.MatchString(parent) {
		return status.Errorf(codes.PermissionDenied, "Permission denied on resource project %s.", parent)
	}
	return nil
}

// validateRateLimits applies the bounds of queue.pb.go RateLimits and
// tasks/docs/quotas (docs/google-cloud.md §3); messages as the real service's.
func validateRateLimits(rl *cloudtaskspb.RateLimits) error {
	switch {
	case rl == nil:
		return nil
	case rl.GetMaxDispatchesPerSecond() < 0:
		return status.Error(codes.InvalidArgument, "RateLimits.maxDispatchesPerSecond cannot be negative.")
	case rl.GetMaxDispatchesPerSecond() > 500:
		return status.Error(codes.InvalidArgument, "RateLimits.maxDispatchesPerSecond must be less than or equal to 500.")
	case rl.GetMaxConcurrentDispatches() < 0:
		return status.Error(codes.InvalidArgument, "RateLimits.maxConcurrentDispatches cannot be negative.")
	case rl.GetMaxConcurrentDispatches() > 5000:
		return status.Error(codes.InvalidArgument, "RateLimits.maxConcurrentDispatches must be less than or equal to 5000.")
	}
	return nil
}

// mergeRateLimits fills unset rate limits with the values a new queue shows
// (500/s, burst 100, 1000 concurrent; recalled from the console, VERIFY).
// They are reported, not enforced.
func mergeRateLimits(rl *cloudtaskspb.RateLimits) *cloudtaskspb.RateLimits {
	out := &cloudtaskspb.RateLimits{MaxDispatchesPerSecond: 500, MaxBurstSize: 100, MaxConcurrentDispatches: 1000}
	if rl.GetMaxDispatchesPerSecond() > 0 {
		out.MaxDispatchesPerSecond = rl.GetMaxDispatchesPerSecond()
	}
	if rl.GetMaxConcurrentDispatches() > 0 {
		out.MaxConcurrentDispatches = rl.GetMaxConcurrentDispatches()
	}
	return out
}

// paginate returns the page of sorted names after token, and the token of
// the next page ("" on the last page). A page token is the last name of the
// previous page, encoded so callers treat it as opaque.
func paginate(names []string, size, maxSize int32, token string) (page []string, next string, err error) {
	if size < 0 {
		return nil, "", status.Error(codes.InvalidArgument, "page_size must not be negative")
	}
	if size == 0 || size > maxSize {
		size = maxSize
	}
	start := 0
	if token != "" {
		after, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return nil, "", status.Error(codes.InvalidArgument, "Invalid page token.")
		}
		for start < len(names) && names[start] <= string(after) {
			start++
		}
	}
	end := min(start+int(size), len(names))
	page = names[start:end]
	if end < len(names) {
		next = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1]))
	}
	return page, next, nil
}
