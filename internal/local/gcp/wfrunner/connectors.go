package wfrunner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	pubsubapi "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// connectors holds the real client libraries the Workflows connectors call
// through, created on first use.
type connectors struct {
	mu     sync.Mutex
	pubsub *pubsubapi.TopicAdminClient
	tasks  *cloudtasks.Client
}

func (c *connectors) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.pubsub != nil {
		errs = append(errs, c.pubsub.Close())
		c.pubsub = nil
	}
	if c.tasks != nil {
		errs = append(errs, c.tasks.Close())
		c.tasks = nil
	}
	return errors.Join(errs...)
}

// connectorTimeout bounds one connector call.
const connectorTimeout = 60 * time.Second

// publish implements googleapis.pubsub.v1.projects.topics.publish: args
// topic and body {messages: [{data: base64, attributes}]}, result
// {messageIds: [...]} (docs/google-cloud.md §4 "Connectors").
func (r *Runner) publish(ctx context.Context, args map[string]any) (any, error) {
	topic, ok := args["topic"].(string)
	if !ok {
		return nil, newError("TypeError", "topic must be a string")
	}
	req := &pubsubpb.PublishRequest{}
	if err := fromREST(args["body"], req); err != nil {
		return nil, err
	}
	req.Topic = topic
	r.conn.mu.Lock()
	if r.conn.pubsub == nil && len(r.cfg.PubSubOptions) > 0 {
		c, err := pubsubapi.NewTopicAdminClient(r.ctx, r.cfg.PubSubOptions...)
		if err != nil {
			r.conn.mu.Unlock()
			return nil, newError("ConnectionFailedError", fmt.Sprintf("failed to create Pub/Sub client: %v", err))
		}
		r.conn.pubsub = c
	}
	client := r.conn.pubsub
	r.conn.mu.Unlock()
	if client == nil {
		return nil, newError("ConnectionFailedError", "the Pub/Sub connector is not configured (Config.PubSubOptions)")
	}
	ctx, cancel := context.WithTimeout(ctx, connectorTimeout)
	defer cancel()
	resp, err := client.Publish(ctx, req)
	if err != nil {
		return nil, connectorError(err)
	}
	return toREST(resp)
}

// createTask implements googleapis.cloudtasks.v2.projects.locations.queues.tasks.create:
// args parent and body {task: {...}} in the REST form; the result is the
// created task.
func (r *Runner) createTask(ctx context.Context, args map[string]any) (any, error) {
	parent, ok := args["parent"].(string)
	if !ok {
		return nil, newError("TypeError", "parent must be a string")
	}
	body, ok := args["body"].(map[string]any)
	if !ok {
		return nil, newError("TypeError", "body must be a map with task")
	}
	task := &cloudtaskspb.Task{}
	if err := fromREST(body["task"], task); err != nil {
		return nil, err
	}
	r.conn.mu.Lock()
	if r.conn.tasks == nil && len(r.cfg.TasksOptions) > 0 {
		c, err := cloudtasks.NewClient(r.ctx, r.cfg.TasksOptions...)
		if err != nil {
			r.conn.mu.Unlock()
			return nil, newError("ConnectionFailedError", fmt.Sprintf("failed to create Cloud Tasks client: %v", err))
		}
		r.conn.tasks = c
	}
	client := r.conn.tasks
	r.conn.mu.Unlock()
	if client == nil {
		return nil, newError("ConnectionFailedError", "the Cloud Tasks connector is not configured (Config.TasksOptions)")
	}
	ctx, cancel := context.WithTimeout(ctx, connectorTimeout)
	defer cancel()
	created, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: parent, Task: task})
	if err != nil {
		return nil, connectorError(err)
	}
	return toREST(created)
}

// fromREST fills m from a Workflows value in the API's REST JSON form
// (camelCase names, base64 bytes, RFC 3339 timestamps, enum names).
func fromREST(v any, m proto.Message) error {
	if v == nil {
		return newError("ValueError", "missing request body")
	}
	b, err := encodeJSON(v)
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		return newError("ValueError", fmt.Sprintf("invalid request body: %v", err))
	}
	return nil
}

func toREST(m proto.Message) (any, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("failed to encode response: %w", err)
	}
	return decodeJSON(b)
}

// connectorError maps a gRPC error to the connector's exception: HttpError
// with the HTTP equivalent of the code (ALREADY_EXISTS → 409; docs/google-cloud.md §4
// "Connector exceptions"), ConnectionError when the service is unreachable,
// TimeoutError on a deadline.
func connectorError(err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unavailable:
		return newError("ConnectionError", st.Message())
	case codes.DeadlineExceeded:
		return newError("TimeoutError", st.Message())
	}
	code := httpCode(st.Code())
	return &raised{value: map[string]any{
		"code":    int64(code),
		"message": st.Message(),
		"headers": map[string]any{},
		"body": map[string]any{"error": map[string]any{
			"code": int64(code), "message": st.Message(), "status": st.Code().String(),
		}},
		"tags": []any{"HttpError"},
	}}
}

// httpCode is the standard mapping of google.rpc codes to HTTP statuses.
func httpCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
