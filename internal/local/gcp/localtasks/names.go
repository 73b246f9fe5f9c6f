package localtasks

import (
	"crypto/rand"
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Name formats from task.pb.go / queue.pb.go (docs/google-cloud.md §3): PROJECT_ID
// letters, digits, hyphens, colons, periods; QUEUE_ID letters, digits,
// hyphens, at most 100; TASK_ID letters, digits, hyphens, underscores, at
// most 500.
var (
	locationRE = regexp.MustCompile(`^projects/[A-Za-z0-9:.\-]+/locations/[A-Za-z0-9\-]+$`)
	queueRE    = regexp.MustCompile(`^(projects/[A-Za-z0-9:.\-]+/locations/[A-Za-z0-9\-]+)/queues/([A-Za-z0-9\-]{1,100})$`)
	taskIDRE   = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,500}$`)
)

// Messages are those real Cloud Tasks returns, as recorded against the live
// service by a public conformance harness ([2nd] aertje/cloud-tasks-emulator
// test/conformance/golden/errors.json), so callers that log or match them see
// the same text locally.
const (
	msgQueueNotFound   = "Queue does not exist. If you just created the queue, wait at least a minute for the queue to initialize."
	msgQueueExists     = "Queue already exists"
	msgQueueName       = `Queue name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>".`
	msgTaskNotFound    = "Requested entity was not found."
	msgTaskRecent      = "The task no longer exists, though a task with this name existed recently. The task either successfully completed or was deleted."
	msgTaskExists      = "Requested entity already exists"
	msgTaskIDFormat    = "Task ID %q can contain only letters ([A-Za-z]), numbers ([0-9]), hyphens (-), or underscores (_). Task ID must between 1 and 500 characters."
	msgTaskQueueDiffer = "The queue name from request ('%s') must be the same as the queue name in the named task ('%s')."
)

// queueID returns the QUEUE_ID of a valid queue name.
func queueID(queue string) string { return queue[strings.LastIndex(queue, "/")+1:] }

// checkQueueName reports INVALID_ARGUMENT unless name is a well-formed queue name.
func checkQueueName(name string) error {
	if !queueRE.MatchString(name) {
		return status.Error(codes.InvalidArgument, msgQueueName)
	}
	return nil
}

// splitTaskName splits "…/queues/Q/tasks/ID" into the queue name and the id.
func splitTaskName(name string) (queue, id string, err error) {
	i := strings.LastIndex(name, "/tasks/")
	if i < 0 {
		return "", "", status.Errorf(codes.InvalidArgument, "Task name must be formatted: %q.", "projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>/tasks/<TASK_ID>")
	}
	queue, id = name[:i], name[i+len("/tasks/"):]
	if err := checkQueueName(queue); err != nil {
		return "", "", err
	}
	if !taskIDRE.MatchString(id) {
		return "", "", status.Errorf(codes.InvalidArgument, msgTaskIDFormat, id)
	}
	return queue, id, nil
}

// newTaskID makes a random numeric id, the shape the real service generates
// for unnamed tasks.
func newTaskID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:])>>1, 10)
}
