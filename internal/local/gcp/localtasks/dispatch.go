package localtasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	codepb "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/clock"
)

// loop dispatches due tasks. It sleeps on one timer of the server's clock,
// set for the earliest scheduled task, and is woken early by CreateTask,
// RunTask, DeleteTask and finished attempts; it never polls.
func (s *Server) loop(ctx context.Context) {
	for {
		var timer clock.Timer
		var fire <-chan time.Time // nil, so never ready, without a timer
		if wait, ok := s.dispatchDue(ctx); ok {
			timer = s.clock.NewTimer(wait)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// dispatchDue starts an attempt for every due task a free slot allows and
// returns how long to wait for the next one (ok=false: nothing to wait for
// but a wake-up).
func (s *Server) dispatchDue(ctx context.Context) (wait time.Duration, ok bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	var due []*task
	var next time.Time
	for _, t := range s.tasks {
		if t.running {
			continue
		}
		at := t.pb.GetScheduleTime().AsTime()
		if !at.After(now) {
			due = append(due, t)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	sort.Slice(due, func(i, j int) bool {
		return due[i].pb.GetScheduleTime().AsTime().Before(due[j].pb.GetScheduleTime().AsTime())
	})
	var started []attempt
	var names []string
slots:
	for _, t := range due {
		select {
		case s.sem <- struct{}{}:
		default:
			// All slots busy: a finishing attempt wakes the loop.
			next = time.Time{}
			break slots
		}
		started = append(started, s.beginLocked(t, now))
		names = append(names, t.pb.GetName())
	}
	if len(started) > 0 {
		// The attempt counts are written before any request is sent, so an
		// attempt cut short by kill -9 still counts as dispatched.
		if err := s.saveLocked(change{tasks: names}); err != nil {
			s.log.ErrorContext(ctx, "failed to persist dispatch", "error", err)
		}
	}
	for _, a := range started {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.run(ctx, a)
		}()
	}
	if next.IsZero() {
		return 0, false
	}
	return next.Sub(now), true
}

// attempt is what one dispatch needs, copied out under the lock.
type attempt struct {
	t          *task
	pb         *cloudtaskspb.Task
	retryCount int32
	executions int32
	prevStatus int
	prevReason string
}

// beginLocked records the start of an attempt on the task (dispatch_count,
// first_attempt, last_attempt; task.pb.go) and marks it running.
func (s *Server) beginLocked(t *task, now time.Time) attempt {
	t.running = true
	dispatched := timestamppb.New(now.Truncate(time.Microsecond))
	t.pb.DispatchCount++
	if t.pb.GetFirstAttempt() == nil {
		// "Only dispatch_time will be set" on first_attempt (task.pb.go).
		t.pb.FirstAttempt = &cloudtaskspb.Attempt{DispatchTime: dispatched}
	}
	t.pb.LastAttempt = &cloudtaskspb.Attempt{ScheduleTime: t.pb.GetScheduleTime(), DispatchTime: dispatched}
	return attempt{
		t:          t,
		pb:         proto.CloneOf(t.pb),
		retryCount: t.pb.GetDispatchCount() - 1,
		executions: t.executions,
		prevStatus: t.prevStatus,
		prevReason: t.prevReason,
	}
}

// outcome is the result of one attempt.
type outcome struct {
	httpStatus int // 0 when no response arrived
	retryAfter string
	code       codes.Code
	message    string
}

// run performs one attempt and records its outcome.
func (s *Server) run(ctx context.Context, a attempt) {
	out := s.send(ctx, a)
	if ctx.Err() != nil {
		// Shutting down: leave the task as it was persisted at dispatch, so
		// the next server attempts it again (at-least-once, as after a crash).
		s.mu.Lock()
		a.t.running = false
		s.mu.Unlock()
		return
	}
	s.finish(ctx, a, out)
}

// send makes the HTTP request of an attempt. Headers follow
// creating-http-target-tasks (docs/google-cloud.md §3): the task's own headers minus
// the ones Cloud Tasks computes or reserves, User-Agent forced to
// "Google-Cloud-Tasks", and the X-CloudTasks-* headers written with their
// documented spelling as raw keys (Go would canonicalise them).
func (s *Server) send(ctx context.Context, a attempt) outcome {
	hr := a.pb.GetHttpRequest()
	deadline := a.pb.GetDispatchDeadline().AsDuration()
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()

	var body io.Reader
	if len(hr.GetBody()) > 0 {
		body = bytes.NewReader(hr.GetBody())
	}
	req, err := http.NewRequestWithContext(ctx, hr.GetHttpMethod().String(), hr.GetUrl(), body)
	if err != nil {
		return outcome{code: codes.InvalidArgument, message: fmt.Sprintf("failed to build request: %v", err)}
	}
	oidc := hr.GetOidcToken()
	for k, v := range hr.GetHeaders() {
		switch lk := strings.ToLower(k); {
		case lk == "host", lk == "content-length", lk == "user-agent",
			strings.HasPrefix(lk, "x-google-"), strings.HasPrefix(lk, "x-appengine-"), strings.HasPrefix(lk, "x-cloudtasks-"):
			continue
		case lk == "authorization" && oidc != nil:
			continue // the token replaces any Authorization header (target.pb.go)
		}
		req.Header[k] = []string{v}
	}
	queue, id, _ := splitTaskName(a.pb.GetName())
	eta := a.pb.GetScheduleTime()
	req.Header.Set("User-Agent", "Google-Cloud-Tasks")
	req.Header["X-CloudTasks-QueueName"] = []string{queueID(queue)}
	req.Header["X-CloudTasks-TaskName"] = []string{id}
	req.Header["X-CloudTasks-TaskRetryCount"] = []string{strconv.Itoa(int(a.retryCount))}
	req.Header["X-CloudTasks-TaskExecutionCount"] = []string{strconv.Itoa(int(a.executions))}
	req.Header["X-CloudTasks-TaskETA"] = []string{fmt.Sprintf("%d.%06d", eta.GetSeconds(), eta.GetNanos()/1000)}
	if a.retryCount > 0 {
		if a.prevStatus != 0 {
			req.Header["X-CloudTasks-TaskPreviousResponse"] = []string{strconv.Itoa(a.prevStatus)}
		}
		if a.prevReason != "" {
			req.Header["X-CloudTasks-TaskRetryReason"] = []string{a.prevReason}
		}
	}
	if oidc != nil {
		if s.signer == nil {
			s.log.ErrorContext(ctx, "cannot dispatch task with oidc_token: no OIDC signer configured", "task", a.pb.GetName())
			return outcome{code: codes.FailedPrecondition, message: "no OIDC signer configured for the local Cloud Tasks"}
		}
		aud := oidc.GetAudience()
		if aud == "" {
			aud = hr.GetUrl() // "If not specified, the URI specified in target will be used." (target.pb.go OidcToken)
		}
		tok, err := s.signer.IDToken(oidc.GetServiceAccountEmail(), aud)
		if err != nil {
			s.log.ErrorContext(ctx, "failed to mint OIDC token", "task", a.pb.GetName(), "error", err)
			return outcome{code: codes.FailedPrecondition, message: fmt.Sprintf("failed to mint OIDC token: %v", err)}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}

	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// The worker did not answer within dispatch_deadline (task.pb.go).
			return outcome{code: codes.DeadlineExceeded, message: fmt.Sprintf("no response within the dispatch deadline of %s", deadline)}
		}
		return outcome{code: codes.Unavailable, message: fmt.Sprintf("failed to reach %s: %v", hr.GetUrl(), err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return outcome{
		httpStatus: resp.StatusCode,
		retryAfter: resp.Header.Get("Retry-After"),
		code:       httpToCode(resp.StatusCode),
		message:    fmt.Sprintf("HTTP status code %d", resp.StatusCode),
	}
}

// finish records an attempt's outcome. A 2xx response removes the task;
// anything else retries it per its RetryConfig, or removes it when retries
// are exhausted (target.pb.go HttpRequest, queue.pb.go RetryConfig; docs/google-cloud.md §3).
func (s *Server) finish(ctx context.Context, a attempt, out outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.poke()
	t := a.t
	t.running = false
	if s.tasks[a.pb.GetName()] != t {
		return // deleted while in flight: the outcome no longer matters
	}
	now := s.clock.Now()
	last := t.pb.GetLastAttempt()
	last.ResponseTime = timestamppb.New(now.Truncate(time.Microsecond))
	last.ResponseStatus = status.New(out.code, out.message).Proto()
	t.prevStatus = out.httpStatus
	// The values of X-CloudTasks-TaskRetryReason are not documented; the
	// google.rpc.Code name of the previous attempt's status is sent.
	t.prevReason = codepb.Code(last.ResponseStatus.GetCode()).String()
	if out.httpStatus != 0 {
		t.pb.ResponseCount++
		if out.httpStatus < 500 {
			t.executions++ // X-CloudTasks-TaskExecutionCount excludes 5xx
		}
	}
	log := s.log.With("task", t.pb.GetName(), "attempt", t.pb.GetDispatchCount(), "http_status", out.httpStatus)

	switch rc := s.retryConfigLocked(t); {
	case out.code == codes.OK:
		log.InfoContext(ctx, "task succeeded")
		s.removeLocked(t.pb.GetName())
	case exhausted(rc, t.pb.GetDispatchCount(), now.Sub(t.pb.GetFirstAttempt().GetDispatchTime().AsTime())):
		log.WarnContext(ctx, "task failed permanently: retries exhausted", "status", out.message)
		s.removeLocked(t.pb.GetName())
	default:
		delay := backoff(rc, int(t.pb.GetDispatchCount()))
		if out.httpStatus == http.StatusTooManyRequests || out.httpStatus == http.StatusServiceUnavailable {
			delay = max(delay, retryAfter(out.retryAfter, now))
		}
		at := now.Add(delay)
		if at.After(t.pb.GetCreateTime().AsTime().Add(retentionLimit)) {
			log.WarnContext(ctx, "task failed permanently: past the 31-day retention", "status", out.message)
			s.removeLocked(t.pb.GetName())
			break
		}
		log.InfoContext(ctx, "task attempt failed; retrying", "status", out.message, "retry_in", delay.String())
		t.pb.ScheduleTime = timestamppb.New(at.Truncate(time.Microsecond))
	}
	if err := s.saveLocked(change{tasks: []string{t.pb.GetName()}}); err != nil {
		log.ErrorContext(ctx, "failed to persist attempt outcome", "error", err)
	}
}

// retryConfigLocked is the task's RetryConfig, which overrides its queue's
// (task.pb.go Task.retry_config), with unset fields from the queue.
func (s *Server) retryConfigLocked(t *task) *cloudtaskspb.RetryConfig {
	base := s.retry
	if q, ok := s.queues[t.queue]; ok && q.GetRetryConfig() != nil {
		base = q.GetRetryConfig()
	}
	if t.pb.GetRetryConfig() == nil {
		return base
	}
	return mergeRetry(t.pb.GetRetryConfig(), base)
}

// httpToCode maps a worker's HTTP status to the google.rpc.Code recorded in
// Attempt.response_status (the usual HTTP↔gRPC mapping; local choice).
func httpToCode(status int) codes.Code {
	switch {
	case status >= 200 && status < 300:
		return codes.OK
	case status == http.StatusBadRequest:
		return codes.InvalidArgument
	case status == http.StatusUnauthorized:
		return codes.Unauthenticated
	case status == http.StatusForbidden:
		return codes.PermissionDenied
	case status == http.StatusNotFound:
		return codes.NotFound
	case status == http.StatusConflict:
		return codes.Aborted
	case status == http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case status == http.StatusNotImplemented:
		return codes.Unimplemented
	case status == http.StatusServiceUnavailable:
		return codes.Unavailable
	case status == http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case status >= 400 && status < 500:
		return codes.FailedPrecondition
	default:
		return codes.Internal
	}
}
