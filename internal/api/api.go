// Package api is the pipeline's HTTP API (JSON, /v1), modelled on
// Privileged Access Manager: entitlements, grants, and the approve, deny and
// withdraw actions. It translates HTTP to the lifecycle services and back
// (each kind of refusal has its status here, the services know no HTTP);
// errors are 4xx with {"error": {"code", "message", "field"}} and, on a
// refusal, nothing is written or emitted (the service checks everything
// before its first write).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/internal/jsonstrict"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/logging"
)

// MaxBody bounds request bodies.
const MaxBody = 64 << 10

// Authenticator names the caller of a request, or refuses it.
type Authenticator interface {
	Caller(r *http.Request) (string, error)
}

// Identifier is an Authenticator that also knows the caller's device and
// access levels (IAP's context-aware access claims), for the audit record.
type Identifier interface {
	Identify(r *http.Request) (*auth.Identity, error)
}

type identityKey struct{}

// DebugPrincipalHeader names the caller in local mode only.
const DebugPrincipalHeader = "X-Debug-Principal"

// LocalAuthenticator trusts the X-Debug-Principal header — only for
// requests from a loopback address, and only when the server itself runs in
// local mode on loopback (the caller of NewLocal guarantees that).
type LocalAuthenticator struct{}

func (LocalAuthenticator) Caller(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return "", errors.New("the debug principal header is honoured only from loopback")
	}
	// Nothing is trimmed or folded: a look-alike of someone's address is
	// refused, not taken for them.
	email, ok := strings.CutPrefix(r.Header.Get(DebugPrincipalHeader), "user:")
	if !ok {
		return "", fmt.Errorf("set %s: user:EMAIL to say who you are (local mode)", DebugPrincipalHeader)
	}
	canonical, err := emailaddr.Canonical(email)
	if err != nil {
		return "", fmt.Errorf("set %s: user:EMAIL to say who you are (local mode): %w", DebugPrincipalHeader, err)
	}
	return canonical, nil
}

// RateLimit bounds, per caller, the calls that make the pipeline send
// mail (a request notifies its approvers, a decision the requester):
// JIT Access's pentest found no such limit (docs/jit-access.md §6, #415). The
// buckets live in the function instance: several instances each allow
// this much.
type RateLimit struct {
	Every time.Duration // one more call allowed per Every
	Burst int
}

// DefaultRateLimit allows bursts of 10 and then one call every 6 s.
var DefaultRateLimit = RateLimit{Every: 6 * time.Second, Burst: 10}

type limiter struct {
	mu      sync.Mutex
	cfg     RateLimit
	buckets map[string]*rate.Limiter
}

// allow takes a token from the caller's bucket, keyed by emailaddr.Key so
// that spellings of one address share one bucket.
func (l *limiter) allow(caller string) bool {
	caller = emailaddr.Key(caller)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[caller]
	if !ok {
		if len(l.buckets) > 10000 { // forget idle callers rather than grow without bound
			for k, v := range l.buckets {
				if v.Tokens() >= float64(l.cfg.Burst) {
					delete(l.buckets, k)
				}
			}
		}
		b = rate.NewLimiter(rate.Every(l.cfg.Every), l.cfg.Burst)
		l.buckets[caller] = b
	}
	return b.Allow()
}

// IntakeService is what the intake function's routes call
// (lifecycle.IntakeService).
type IntakeService interface {
	Entitlements(ctx context.Context, caller lifecycle.Caller, project string) (*lifecycle.Listing, error)
	Request(ctx context.Context, caller lifecycle.Caller, in lifecycle.RequestInput) (*grant.Grant, error)
	RequestMany(ctx context.Context, caller lifecycle.Caller, in lifecycle.BatchInput) ([]*grant.Grant, error)
	Reviewers(ctx context.Context, caller lifecycle.Caller, entitlement string) ([]string, error)
	Get(ctx context.Context, caller lifecycle.Caller, id string) (*grant.Grant, error)
	List(ctx context.Context, caller lifecycle.Caller, approvable bool) ([]*grant.Grant, error)
	ListAll(ctx context.Context, caller lifecycle.Caller, q lifecycle.AllQuery, export bool) ([]*grant.Grant, error)
	Withdraw(ctx context.Context, caller lifecycle.Caller, id string) (*grant.Grant, error)
	RevokeByAdmin(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error)
}

// ApprovalService is what the approval function's routes call
// (lifecycle.ApprovalService).
type ApprovalService interface {
	Approve(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error)
	Deny(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error)
}

// Handler serves the API. Intake serves everything but approve and deny,
// which the approval function serves.
type Handler struct {
	intake   IntakeService
	approval ApprovalService
	auth     Authenticator
	log      *slog.Logger
	mux      *http.ServeMux
	limit    *limiter
}

// routes selects which part of the API a handler serves.
type routes int

const (
	intakeRoutes routes = 1 << iota
	approvalRoutes
	allRoutes = intakeRoutes | approvalRoutes
)

// WithRateLimit replaces the default per-caller rate limit.
func (h *Handler) WithRateLimit(l RateLimit) *Handler {
	h.limit = &limiter{cfg: l, buckets: map[string]*rate.Limiter{}}
	return h
}

// NewIntake builds the intake function's handler: entitlements, requests,
// their reading, withdrawal and revocation.
func NewIntake(svc IntakeService, auth Authenticator, log *slog.Logger) *Handler {
	return newHandler(svc, nil, auth, intakeRoutes, log)
}

// NewApproval builds the approval function's handler: approve and deny.
func NewApproval(svc ApprovalService, auth Authenticator, log *slog.Logger) *Handler {
	return newHandler(nil, svc, auth, approvalRoutes, log)
}

func newHandler(intake IntakeService, approval ApprovalService, auth Authenticator, routes routes, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{intake: intake, approval: approval, auth: auth, log: log, mux: http.NewServeMux(),
		limit: &limiter{cfg: DefaultRateLimit, buckets: map[string]*rate.Limiter{}}}
	if routes&intakeRoutes != 0 {
		h.mux.HandleFunc("GET /v1/entitlements", h.entitlements)
		h.mux.HandleFunc("POST /v1/grants", h.create)
		h.mux.HandleFunc("POST /v1/grants:batchCreate", h.batchCreate)
		h.mux.HandleFunc("GET /v1/entitlements/{id}/reviewers", h.reviewers)
		h.mux.HandleFunc("GET /v1/grants", h.list)
		h.mux.HandleFunc("GET /v1/grants:export", h.export)
		h.mux.HandleFunc("GET /v1/grants/{id}", h.get)
	}
	// Go's patterns cannot split "{id}:verb", so the action routes match the
	// whole segment and split it themselves.
	h.mux.HandleFunc("POST /v1/grants/{action}", func(w http.ResponseWriter, r *http.Request) {
		id, verb, _ := strings.Cut(r.PathValue("action"), ":")
		switch {
		case verb == "withdraw" && routes&intakeRoutes != 0:
			h.act(w, r, id, func(caller lifecycle.Caller, _ string) (*grant.Grant, error) {
				return h.intake.Withdraw(r.Context(), caller, id)
			})
		case verb == "revoke" && routes&intakeRoutes != 0:
			h.act(w, r, id, func(caller lifecycle.Caller, reason string) (*grant.Grant, error) {
				return h.intake.RevokeByAdmin(r.Context(), caller, id, reason)
			})
		case verb == "approve" && routes&approvalRoutes != 0:
			h.act(w, r, id, func(caller lifecycle.Caller, reason string) (*grant.Grant, error) {
				return h.approval.Approve(r.Context(), caller, id, reason)
			})
		case verb == "deny" && routes&approvalRoutes != 0:
			h.act(w, r, id, func(caller lifecycle.Caller, reason string) (*grant.Grant, error) {
				return h.approval.Deny(r.Context(), caller, id, reason)
			})
		default:
			writeError(w, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no such action: use :approve, :deny, :withdraw or :revoke"})
		}
	})
	return h
}

// SecurityHeaders are set on every response: the API returns JSON only,
// so nothing may run, frame it or learn its URLs through a referrer.
var SecurityHeaders = map[string]string{
	"Cache-Control":              "no-store",
	"X-Content-Type-Options":     "nosniff",
	"Content-Security-Policy":    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	"X-Frame-Options":            "DENY",
	"Referrer-Policy":            "no-referrer",
	"Cross-Origin-Opener-Policy": "same-origin",
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range SecurityHeaders {
		w.Header().Set(k, v)
	}
	// Authenticate once; caller() reads the result from the context.
	who, err := h.identify(r)
	r = r.WithContext(context.WithValue(r.Context(), identityKey{}, identified{who, err}))
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		h.mux.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h.mux.ServeHTTP(sw, r)
	// One audit line per changing call, refused ones included, with what
	// IAP says about the device.
	labels := []any{"event/type", "audit", "event/id", "api.call",
		"method", r.Method, "path", r.URL.Path, "status", strconv.Itoa(sw.status)}
	if who != nil {
		labels = append(labels, "user", who.Email, "device_id", who.DeviceID, "access_levels", strings.Join(who.AccessLevels, ","))
	} else {
		labels = append(labels, "user", "", "auth_error", err.Error())
	}
	h.log.Log(r.Context(), logging.LevelNotice, "api call", slog.Group(logging.KeyLabels, labels...))
}

// identify authenticates the request with the Identifier, or the plain
// Authenticator. Whatever the authenticator, the caller's address must be
// canonical (package emailaddr): the policy, the ledger and the rate limit
// key people by it, so a look-alike would be someone else, or nobody.
func (h *Handler) identify(r *http.Request) (*auth.Identity, error) {
	var who *auth.Identity
	if id, ok := h.auth.(Identifier); ok {
		var err error
		if who, err = id.Identify(r); err != nil {
			return nil, err
		}
	} else {
		email, err := h.auth.Caller(r)
		if err != nil {
			return nil, err
		}
		who = &auth.Identity{Email: email}
	}
	email, err := emailaddr.Canonical(who.Email)
	if err != nil {
		return nil, fmt.Errorf("the caller's address is refused: %w", err)
	}
	cp := *who
	cp.Email = email
	return &cp, nil
}

type identified struct {
	who *auth.Identity
	err error
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// caller authenticates the request; for methods that change anything it
// also requires X-Requested-With, which a browser cannot send cross-site
// without a CORS preflight.
func (h *Handler) caller(w http.ResponseWriter, r *http.Request) (lifecycle.Caller, bool) {
	id, _ := r.Context().Value(identityKey{}).(identified)
	if id.who == nil {
		err := id.err
		if err == nil {
			err = errors.New("not authenticated")
		}
		writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHENTICATED", Message: err.Error()})
		return lifecycle.Caller{}, false
	}
	caller := lifecycle.Caller{Email: id.who.Email, HostedDomain: id.who.HostedDomain}
	if r.Method != http.MethodGet && r.Header.Get("X-Requested-With") == "" {
		writeError(w, &apiError{Status: http.StatusForbidden, Code: "PERMISSION_DENIED", Field: "X-Requested-With", Message: "requests that change anything must carry the X-Requested-With header"})
		return lifecycle.Caller{}, false
	}
	if r.Method != http.MethodGet && !h.limit.allow(caller.Email) {
		w.Header().Set("Retry-After", strconv.Itoa(int(h.limit.cfg.Every.Seconds())+1))
		writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: "RESOURCE_EXHAUSTED", Message: "too many requests from you; try again shortly"})
		return lifecycle.Caller{}, false
	}
	return caller, true
}

func (h *Handler) entitlements(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	listing, err := h.intake.Entitlements(r.Context(), caller, r.URL.Query().Get("project"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listing)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	var in lifecycle.RequestInput
	if !decode(w, r, &in) {
		return
	}
	g, err := h.intake.Request(r.Context(), caller, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/grants/"+g.ID)
	writeJSON(w, http.StatusCreated, View(g))
}

// batchCreate activates several self-approved roles of one project's
// eligible IAM bindings at once (JIT Access's multi-role activation).
func (h *Handler) batchCreate(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	var in lifecycle.BatchInput
	if !decode(w, r, &in) {
		return
	}
	gs, err := h.intake.RequestMany(r.Context(), caller, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]GrantView, 0, len(gs))
	for _, g := range gs {
		out = append(out, View(g))
	}
	writeJSON(w, http.StatusCreated, map[string]any{"grants": out})
}

// reviewers lists the peers who may review a request for a peer-approved
// role of the eligible IAM bindings.
func (h *Handler) reviewers(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	rs, err := h.intake.Reviewers(r.Context(), caller, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reviewers": rs})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	g, err := h.intake.Get(r.Context(), caller, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, View(g))
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	view := r.URL.Query().Get("view")
	var gs []*grant.Grant
	var err error
	switch view {
	case "", "approvable":
		gs, err = h.intake.List(r.Context(), caller, view == "approvable")
	case "all":
		q, ok := allQuery(w, r)
		if !ok {
			return
		}
		gs, err = h.intake.ListAll(r.Context(), caller, q, false)
	default:
		writeError(w, &apiError{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Field: "view", Message: `must be empty, "approvable" or "all"`})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]GrantView, 0, len(gs))
	for _, g := range gs {
		out = append(out, View(g))
	}
	writeJSON(w, http.StatusOK, map[string]any{"grants": out})
}

// allQuery reads an administrator's filters: state (repeated, or
// comma-separated), entitlement, requester, limit.
func allQuery(w http.ResponseWriter, r *http.Request) (lifecycle.AllQuery, bool) {
	v := r.URL.Query()
	q := lifecycle.AllQuery{Entitlement: v.Get("entitlement"), Requester: v.Get("requester")}
	for _, s := range v["state"] {
		for _, st := range strings.Split(s, ",") {
			if st = strings.TrimSpace(st); st != "" {
				q.States = append(q.States, grant.State(strings.ToUpper(st)))
			}
		}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, &apiError{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Field: "limit", Message: "must be a positive whole number"})
			return q, false
		}
		q.Limit = n
	}
	return q, true
}

// export downloads everyone's grants, filtered, as CSV or JSON: for
// holders of EXPORT.
func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "json" {
		writeError(w, &apiError{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Field: "format", Message: `must be "csv" or "json"`})
		return
	}
	q, ok := allQuery(w, r)
	if !ok {
		return
	}
	gs, err := h.intake.ListAll(r.Context(), caller, q, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ServeExport(w, format, gs) //nolint:errcheck // the client went away
}

func (h *Handler) act(w http.ResponseWriter, r *http.Request, id string, do func(caller lifecycle.Caller, reason string) (*grant.Grant, error)) {
	caller, ok := h.caller(w, r)
	if !ok {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 && !decode(w, r, &body) {
		return
	}
	g, err := do(caller, body.Reason)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, View(g))
}

// decode reads a JSON body strictly: one value, bounded size, and
// package jsonstrict's rules — no duplicate or case-variant names at any
// depth, exact field names, nothing after the value — so the request the
// handler acts on is the one the caller (and any log or reviewer of the
// body) sees. A refusal names the offending field's path.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, &apiError{Status: http.StatusUnsupportedMediaType, Code: "INVALID_ARGUMENT", Field: "Content-Type", Message: "send application/json"})
		return false
	}
	err := jsonstrict.Decode(http.MaxBytesReader(w, r.Body, MaxBody), v)
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "INVALID_ARGUMENT", Field: "body", Message: fmt.Sprintf("the body exceeds %d bytes", MaxBody)})
		return false
	}
	field := ""
	var strict *jsonstrict.Error
	if errors.As(err, &strict) {
		field = strict.Path
	}
	if errors.Is(err, jsonstrict.ErrTrailingData) {
		field = "body"
	}
	writeError(w, &apiError{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Field: field, Message: "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")})
	return false
}

// apiError is an error response: its HTTP status and the body's code,
// field and message.
type apiError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

// statuses is the HTTP status of each kind of the services' refusals.
var statuses = map[error]int{
	lifecycle.ErrInvalid:         http.StatusBadRequest,
	lifecycle.ErrNotFound:        http.StatusNotFound,
	lifecycle.ErrForbidden:       http.StatusForbidden,
	lifecycle.ErrConflict:        http.StatusConflict,
	lifecycle.ErrUnauthenticated: http.StatusUnauthorized,
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *lifecycle.Error
	if errors.As(err, &e) {
		if status, ok := statuses[e.Kind]; ok {
			writeError(w, &apiError{Status: status, Code: e.Code(), Field: e.Field, Message: e.Message})
			return
		}
	}
	h.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, &apiError{Status: http.StatusInternalServerError, Code: "INTERNAL", Message: "internal error; see the logs"})
}

func writeError(w http.ResponseWriter, e *apiError) {
	body := map[string]any{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		body["field"] = e.Field
	}
	writeJSON(w, e.Status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

// GrantView is a grant as the API shows it.
type GrantView struct {
	ID                 string            `json:"id"`
	Entitlement        string            `json:"entitlement"`
	Requester          string            `json:"requester"`
	State              grant.State       `json:"state"`
	RequestedDuration  string            `json:"requestedDuration"`
	Justification      string            `json:"justification"`
	Inputs             map[string]any    `json:"inputs,omitempty"`
	Privileges         []grant.Privilege `json:"privileges"`
	CreateTime         time.Time         `json:"createTime"`
	UpdateTime         time.Time         `json:"updateTime"`
	StartTime          *time.Time        `json:"startTime,omitempty"`
	EndTime            *time.Time        `json:"endTime,omitempty"`
	ApprovalRequired   bool              `json:"approvalRequired"`
	RequiredApprovals  int               `json:"requiredApprovals,omitempty"`
	ApprovalDeadline   *time.Time        `json:"approvalDeadline,omitempty"`
	Approvers          []string          `json:"approvers,omitempty"`
	Reviewers          []string          `json:"reviewers,omitempty"`
	Approvals          []grant.Decision  `json:"approvals"`
	Denial             *grant.Decision   `json:"denial,omitempty"`
	RevocationVerified bool              `json:"revocationVerified"`
	Timeline           []TimelineEntry   `json:"timeline"`
}

// TimelineEntry is one entry of a grant's timeline.
type TimelineEntry struct {
	Time    time.Time   `json:"time"`
	State   grant.State `json:"state"`
	Event   string      `json:"event"`
	Actor   string      `json:"actor,omitempty"`
	Message string      `json:"message,omitempty"`
}

// View renders a grant for the API; callback URLs (capabilities) and
// publication flags stay inside.
func View(g *grant.Grant) GrantView {
	v := GrantView{
		ID: g.ID, Entitlement: g.Entitlement, Requester: g.Requester, State: g.State,
		RequestedDuration: isoduration.Format(g.RequestedDuration), Justification: g.Justification,
		Inputs: g.Inputs, Privileges: g.Privileges, CreateTime: g.CreateTime, UpdateTime: g.UpdateTime,
		ApprovalRequired: g.ApprovalRequired, RequiredApprovals: g.RequiredApprovals, Approvers: g.Approvers,
		Reviewers: g.Reviewers, Approvals: g.Approvals(), RevocationVerified: g.RevocationVerified, Timeline: []TimelineEntry{},
	}
	if v.Approvals == nil {
		v.Approvals = []grant.Decision{}
	}
	for _, d := range g.Decisions {
		if !d.Approved {
			d := d
			v.Denial = &d
		}
	}
	if !g.StartTime.IsZero() {
		v.StartTime, v.EndTime = &g.StartTime, &g.EndTime
	}
	if !g.ApprovalDeadline.IsZero() {
		v.ApprovalDeadline = &g.ApprovalDeadline
	}
	for _, e := range g.Timeline {
		v.Timeline = append(v.Timeline, TimelineEntry{Time: e.Time, State: e.State, Event: e.EventType, Actor: e.Actor, Message: e.Message})
	}
	return v
}
