package pages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/policy"
)

// Intake is the slice of lifecycle.IntakeService the people's pages use.
type Intake interface {
	Entitlements(ctx context.Context, caller lifecycle.Caller, project string) (*lifecycle.Listing, error)
	Request(ctx context.Context, caller lifecycle.Caller, in lifecycle.RequestInput) (*grant.Grant, error)
	Reviewers(ctx context.Context, caller lifecycle.Caller, entitlement string) ([]string, error)
	Get(ctx context.Context, caller lifecycle.Caller, id string) (*grant.Grant, error)
	List(ctx context.Context, caller lifecycle.Caller, approvable bool) ([]*grant.Grant, error)
	ListAll(ctx context.Context, caller lifecycle.Caller, q lifecycle.AllQuery, export bool) ([]*grant.Grant, error)
	Withdraw(ctx context.Context, caller lifecycle.Caller, id string) (*grant.Grant, error)
	RevokeByAdmin(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error)
	PolicyInForce(ctx context.Context, caller lifecycle.Caller) (*policy.Policy, string, error)
}

// PolicyStatus says which newer version of the policy document was
// refused, if any (policy/source.Source.Status, adapted).
type PolicyStatus func() (rejectedVersion string, rejectedAt time.Time, why error)

// PortalConfig is what the people's pages need; Logger and SignInURL are
// optional.
type PortalConfig struct {
	Intake Intake
	Auth   Authenticator
	Clock  Clock
	// Export answers with grants as a download, csv or json
	// (api.ServeExport): the API's export and the pages' are one file.
	Export    func(w http.ResponseWriter, format string, gs []*grant.Grant) error
	Logger    *slog.Logger
	SignInURL string
	// Status, optional, tells the policy page about a refused version.
	Status PolicyStatus
	// ApprovalsURL is the origin of the approval function's pages, where
	// requests to approve are decided ("": these pages' own origin, as in
	// jit local).
	ApprovalsURL string
}

// Portal serves the people's pages of the intake function: what I may
// request and the request form, my grants and each grant's page with its
// timeline and withdrawal, and for administrators every grant with
// filters, revocation and export. Server-rendered, without JavaScript.
//
// Its forms are protected against cross-site requests by the Origin and
// Sec-Fetch-Site headers browsers send (OWASP's "verifying origin with
// standard headers"): a POST must come from the pages' own origin, which
// is the request's own host, so the intake function needs no setting for
// it. Every decision is the intake service's, as for the API.
type Portal struct {
	cfg PortalConfig
	log *slog.Logger
	mux *http.ServeMux
}

// NewPortal builds the people's pages.
func NewPortal(cfg PortalConfig) (*Portal, error) {
	var errs []error
	if cfg.Intake == nil || cfg.Auth == nil || cfg.Clock == nil || cfg.Export == nil {
		errs = append(errs, errors.New("Intake, Auth, Clock and Export are required"))
	}
	if cfg.SignInURL != "" && !localPath(cfg.SignInURL) {
		errs = append(errs, fmt.Errorf("SignInURL %q must be a path on the pages' origin", cfg.SignInURL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	p := &Portal{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/entitlements", http.StatusSeeOther)
	})
	p.mux.HandleFunc("GET /entitlements", p.entitlements)
	p.mux.HandleFunc("GET /request", p.requestForm)
	p.mux.HandleFunc("POST /request", p.request)
	p.mux.HandleFunc("GET /grants", p.grants)
	p.mux.HandleFunc("GET /grants/{id}", p.grant)
	p.mux.HandleFunc("POST /grants/{id}/withdraw", p.withdraw)
	p.mux.HandleFunc("POST /grants/{id}/revoke", p.revoke)
	p.mux.HandleFunc("GET /admin/grants", p.adminGrants)
	p.mux.HandleFunc("GET /admin/export", p.adminExport)
	p.mux.HandleFunc("GET /admin/policy", p.adminPolicy)
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		renderError(w, http.StatusNotFound, "Not found", "There is no page here.")
	})
	return p, nil
}

func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setHeaders(w)
	p.mux.ServeHTTP(w, r)
}

// caller authenticates the request; a POST must also come from the pages'
// own origin. Without an identity the page says how to sign in.
func (p *Portal) caller(w http.ResponseWriter, r *http.Request) (lifecycle.Caller, bool) {
	if r.Method == http.MethodPost && !samePortalOrigin(r) {
		p.log.WarnContext(r.Context(), "portal form refused: foreign or missing Origin", "origin", r.Header.Get("Origin"), "path", r.URL.Path)
		renderError(w, http.StatusForbidden, "Refused",
			"This form did not come from these pages, so it was refused. Nothing was changed.")
		return lifecycle.Caller{}, false
	}
	c, err := p.cfg.Auth.Caller(r)
	if err != nil || c.Email == "" {
		v := errorView{Title: "Sign in", Paragraphs: []string{"Sign in to see your access."}}
		if p.cfg.SignInURL != "" {
			next := r.URL.RequestURI()
			if r.Method != http.MethodGet {
				next = "/entitlements"
			}
			v.Link = &linkView{Href: p.cfg.SignInURL + "?next=" + url.QueryEscape(next), Text: "Sign in"}
		}
		render(w, http.StatusUnauthorized, "error", v)
		return lifecycle.Caller{}, false
	}
	return c, true
}

// samePortalOrigin: Sec-Fetch-Site, which pages cannot forge, says
// same-origin; or, from a browser that does not send it, Origin is this
// host's.
func samePortalOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return true
	case "":
		o := r.Header.Get("Origin")
		return o != "" && (o == "https://"+r.Host || o == "http://"+r.Host)
	}
	return false
}

// fail renders a service's refusal, or a generic page.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *lifecycle.Error
	if errors.As(err, &e) {
		if status, ok := statuses[e.Kind]; ok {
			renderError(w, status, titles[status], e.Message)
			return
		}
	}
	p.log.ErrorContext(r.Context(), "portal page failed", "method", r.Method, "path", r.URL.Path, "error", err)
	renderError(w, http.StatusInternalServerError, "Something went wrong",
		"The page could not be shown just now. Try again shortly; the logs say more.")
}

// nav is the menu of every portal page.
type nav struct {
	Caller string
	Active string
}

type entitlementsView struct {
	Title string
	Nav   nav
	// Incomplete: eligible IAM bindings are still being read.
	Incomplete   bool
	Project      string
	Entitlements []lifecycle.Entitlement
	// Held are the entitlements with a grant pending or active, by ID.
	Held map[string]string
}

func (p *Portal) entitlements(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	project := r.URL.Query().Get("project")
	listing, err := p.cfg.Intake.Entitlements(r.Context(), caller, project)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	mine, err := p.cfg.Intake.List(r.Context(), caller, false)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	held := map[string]string{}
	for _, g := range mine {
		if g.State == grant.ApprovalAwaited || g.MayHoldAccess() && !g.State.Terminal() {
			held[g.Entitlement] = string(g.State)
		}
	}
	render(w, http.StatusOK, "entitlements", entitlementsView{
		Title: "What you may request", Nav: nav{caller.Email, "entitlements"},
		Incomplete: listing.Incomplete, Project: project, Entitlements: listing.Entitlements, Held: held,
	})
}

type requestView struct {
	Title       string
	Nav         nav
	Notice      *noticeView
	Entitlement lifecycle.Entitlement
	// Minutes are the duration field's bounds and value, in minutes.
	MinMinutes, MaxMinutes, Minutes int64
	Justification                   string
	Hint                            string
	Inputs                          []inputField
	Reviewers                       []reviewerField
}

type inputField struct {
	Name, Label, Type, Value string
	Min, Max                 int64
	Checked                  bool
}

type reviewerField struct {
	Email   string
	Checked bool
}

// findEntitlement is the caller's entitlement of that ID.
func (p *Portal) findEntitlement(ctx context.Context, caller lifecycle.Caller, id string) (lifecycle.Entitlement, error) {
	project := ""
	if env, rest, ok := strings.Cut(id, "."); ok && env == "classic" {
		project, _, _ = strings.Cut(rest, ".")
	}
	listing, err := p.cfg.Intake.Entitlements(ctx, caller, project)
	if err != nil {
		return lifecycle.Entitlement{}, err
	}
	for _, e := range listing.Entitlements {
		if strings.EqualFold(e.ID, id) {
			return e, nil
		}
	}
	return lifecycle.Entitlement{}, &lifecycle.Error{Kind: lifecycle.ErrNotFound, Field: "entitlement", Message: fmt.Sprintf("%q does not exist or you may not request it", id)}
}

func (p *Portal) requestForm(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	e, err := p.findEntitlement(r.Context(), caller, r.URL.Query().Get("entitlement"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v, err := p.requestView(r.Context(), caller, e, nil)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	render(w, http.StatusOK, "request", v)
}

// requestView is the form for e, refilled from form (nil: defaults).
func (p *Portal) requestView(ctx context.Context, caller lifecycle.Caller, e lifecycle.Entitlement, form url.Values) (requestView, error) {
	minD, _ := isoduration.Parse(e.MinDuration)
	maxD, _ := isoduration.Parse(e.MaxDuration)
	v := requestView{
		Title: "Request " + e.ID, Nav: nav{caller.Email, "entitlements"}, Entitlement: e,
		MinMinutes: max(1, int64(minD/time.Minute)), MaxMinutes: max(1, int64(maxD/time.Minute)),
	}
	// JIT Access offers min(60, max) minutes by default (docs/jit-access.md §1.7).
	v.Minutes = min(max(60, v.MinMinutes), v.MaxMinutes)
	if form != nil {
		if m, err := strconv.ParseInt(form.Get("minutes"), 10, 64); err == nil {
			v.Minutes = m
		}
		v.Justification = form.Get("justification")
	}
	for _, in := range e.Inputs {
		if in.Name == "justification" {
			v.Hint = in.DisplayName
			continue
		}
		f := inputField{Name: in.Name, Label: in.DisplayName, Min: in.Min, Max: in.Max}
		if f.Label == "" {
			f.Label = in.Name
		}
		switch in.Type {
		case "int":
			f.Type = "number"
		case "boolean":
			f.Type = "checkbox"
		default:
			f.Type = "text"
		}
		if form != nil {
			f.Value = form.Get("input." + in.Name)
			f.Checked = f.Value == "true"
		}
		v.Inputs = append(v.Inputs, f)
	}
	if e.Classic != nil && e.Classic.ActivationType == "MPA" {
		peers, err := p.cfg.Intake.Reviewers(ctx, caller, e.ID)
		if err != nil {
			return v, err
		}
		for _, peer := range peers {
			v.Reviewers = append(v.Reviewers, reviewerField{Email: peer, Checked: form != nil && slices.Contains(form["reviewer"], peer)})
		}
	}
	return v, nil
}

func (p *Portal) request(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		renderError(w, http.StatusBadRequest, "Unreadable form", "The form could not be read, so nothing was changed.")
		return
	}
	e, err := p.findEntitlement(r.Context(), caller, r.PostForm.Get("entitlement"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	in := lifecycle.RequestInput{Entitlement: e.ID, Justification: r.PostForm.Get("justification"), Reviewers: r.PostForm["reviewer"]}
	refuse := func(status int, msg string) {
		v, err := p.requestView(r.Context(), caller, e, r.PostForm)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		v.Notice = &noticeView{Error: true, Text: msg}
		render(w, status, "request", v)
	}
	minutes, err := strconv.ParseInt(r.PostForm.Get("minutes"), 10, 64)
	if err != nil || minutes < 1 {
		refuse(http.StatusBadRequest, "Duration: give a whole number of minutes.")
		return
	}
	in.RequestedDuration = isoduration.Format(time.Duration(minutes) * time.Minute)
	for _, def := range e.Inputs {
		if def.Name == "justification" {
			continue
		}
		raw := r.PostForm.Get("input." + def.Name)
		if in.Inputs == nil {
			in.Inputs = map[string]any{}
		}
		switch def.Type {
		case "boolean":
			in.Inputs[def.Name] = raw == "true"
		default:
			in.Inputs[def.Name] = raw // the policy types form strings (policy.Variable.convert)
		}
	}
	g, err := p.cfg.Intake.Request(r.Context(), caller, in)
	var refused *lifecycle.Error
	if errors.As(err, &refused) {
		status := statuses[refused.Kind]
		if status == 0 {
			status = http.StatusBadRequest
		}
		msg := refused.Message
		if refused.Field != "" {
			msg = refused.Field + ": " + msg
		}
		refuse(status, msg)
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/grants/"+url.PathEscape(g.ID), http.StatusSeeOther)
}

type grantsView struct {
	Title    string
	Nav      nav
	Grants   []grantRow
	Pending  []grantRow
	Filters  adminFilters
	Export   string
	Empty    string
	ForAdmin bool
	// Approvals is the approval pages' origin, for the inbox's links.
	Approvals string
	Inbox     string
}

type grantRow struct {
	ID, Entitlement, Requester string
	State                      grant.State
	Left                       string
	Created                    timeView
}

func (p *Portal) rows(gs []*grant.Grant) []grantRow {
	now := p.cfg.Clock.Now()
	out := make([]grantRow, 0, len(gs))
	for _, g := range gs {
		row := grantRow{ID: g.ID, Entitlement: g.Entitlement, Requester: g.Requester, State: g.State, Created: newTimeView(g.CreateTime)}
		if g.State == grant.Active && g.EndTime.After(now) {
			row.Left = isoduration.Human(g.EndTime.Sub(now).Round(time.Second))
		}
		out = append(out, row)
	}
	return out
}

func (p *Portal) grants(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	mine, err := p.cfg.Intake.List(r.Context(), caller, false)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	pending, err := p.cfg.Intake.List(r.Context(), caller, true)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	render(w, http.StatusOK, "grants", grantsView{Title: "Your access", Nav: nav{caller.Email, "grants"},
		Grants: p.rows(mine), Pending: p.rows(pending), Empty: "You have asked for nothing yet.",
		Approvals: p.cfg.ApprovalsURL, Inbox: InboxToken})
}

type grantPageView struct {
	Title    string
	Nav      nav
	Notice   *noticeView
	Grant    grantView
	Timeline []timelineRow
	Left     string
	// Withdraw and Revoke are offered when they may succeed.
	Withdraw, Revoke bool
	ReasonMax        int
}

type timelineRow struct {
	Time                  timeView
	State, Event, Message string
	Actor                 string
}

func (p *Portal) grant(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	g, err := p.cfg.Intake.Get(r.Context(), caller, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	var notice *noticeView
	if text, ok := doneTexts[r.URL.Query().Get("done")]; ok {
		notice = &noticeView{Text: text}
	}
	p.renderGrantPage(w, http.StatusOK, caller, g, notice)
}

func (p *Portal) renderGrantPage(w http.ResponseWriter, status int, caller lifecycle.Caller, g *grant.Grant, notice *noticeView) {
	v := grantPageView{Title: "Grant " + g.ID, Nav: nav{caller.Email, "grants"}, Notice: notice, ReasonMax: lifecycle.MaxReason}
	v.Grant = grantView{ID: g.ID, Requester: g.Requester, Entitlement: g.Entitlement,
		Duration:      fmt.Sprintf("%s (%s)", isoduration.Human(g.RequestedDuration), isoduration.Format(g.RequestedDuration)),
		Justification: g.Justification, Privileges: g.Privileges, State: g.State, StateText: stateTexts[g.State],
		Deadline: newTimeView(g.ApprovalDeadline)}
	for _, d := range g.Decisions {
		v.Grant.Decisions = append(v.Grant.Decisions, decisionView{Approver: d.Approver, Approved: d.Approved, Reason: d.Reason, Time: newTimeView(d.Time)})
	}
	for _, e := range g.Timeline {
		v.Timeline = append(v.Timeline, timelineRow{Time: newTimeView(e.Time), State: string(e.State),
			Event: strings.TrimSuffix(strings.TrimPrefix(e.EventType, "dev.jitpipeline."), ".v1"), Actor: e.Actor, Message: e.Message})
	}
	if now := p.cfg.Clock.Now(); g.State == grant.Active && g.EndTime.After(now) {
		v.Left = isoduration.Human(g.EndTime.Sub(now).Round(time.Second))
	}
	mine := strings.EqualFold(caller.Email, g.Requester)
	v.Withdraw = mine && (g.State == grant.ApprovalAwaited || g.State == grant.Scheduled || g.MayHoldAccess() && g.State != grant.Withdrawing && g.State != grant.Revoking)
	// The service decides who may revoke; the form is offered where it can
	// do anything, and a refusal says why.
	v.Revoke = g.MayHoldAccess() && g.State != grant.Withdrawing && g.State != grant.Revoking
	render(w, status, "mygrant", v)
}

func (p *Portal) withdraw(w http.ResponseWriter, r *http.Request) {
	p.act(w, r, func(caller lifecycle.Caller, id, _ string) (*grant.Grant, error) {
		return p.cfg.Intake.Withdraw(r.Context(), caller, id)
	}, "withdrawn")
}

func (p *Portal) revoke(w http.ResponseWriter, r *http.Request) {
	p.act(w, r, func(caller lifecycle.Caller, id, reason string) (*grant.Grant, error) {
		return p.cfg.Intake.RevokeByAdmin(r.Context(), caller, id, reason)
	}, "revoked")
}

// act runs a form's action on a grant and shows the grant again.
func (p *Portal) act(w http.ResponseWriter, r *http.Request, do func(caller lifecycle.Caller, id, reason string) (*grant.Grant, error), done string) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		renderError(w, http.StatusBadRequest, "Unreadable form", "The form could not be read, so nothing was changed.")
		return
	}
	id := r.PathValue("id")
	g, err := do(caller, id, r.PostForm.Get("reason"))
	var refused *lifecycle.Error
	if errors.As(err, &refused) {
		cur, getErr := p.cfg.Intake.Get(r.Context(), caller, id)
		if getErr != nil {
			p.fail(w, r, err)
			return
		}
		status := statuses[refused.Kind]
		if status == 0 {
			status = http.StatusBadRequest
		}
		p.renderGrantPage(w, status, caller, cur, &noticeView{Error: true, Text: refused.Message})
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/grants/"+url.PathEscape(g.ID)+"?done="+done, http.StatusSeeOther)
}

// doneTexts are the notices after a form's action, by the code the
// redirect carries: never text from the URL itself.
var doneTexts = map[string]string{
	"withdrawn": "Withdrawn: any access is being removed.",
	"revoked":   "Revoked: the access is being removed.",
}

// adminFilters are the administrators' filters, as the form holds them.
type adminFilters struct {
	State, Entitlement, Requester string
	States                        []grant.State
}

func (f adminFilters) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.State, "entitlement": f.Entitlement, "requester": f.Requester} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func filtersOf(r *http.Request) (adminFilters, lifecycle.AllQuery) {
	q := r.URL.Query()
	f := adminFilters{State: q.Get("state"), Entitlement: strings.TrimSpace(q.Get("entitlement")), Requester: strings.TrimSpace(q.Get("requester")), States: grant.AllStates}
	aq := lifecycle.AllQuery{Entitlement: f.Entitlement, Requester: f.Requester, Limit: 500}
	if f.State != "" {
		aq.States = []grant.State{grant.State(f.State)}
	}
	return f, aq
}

func (p *Portal) adminGrants(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	f, q := filtersOf(r)
	gs, err := p.cfg.Intake.ListAll(r.Context(), caller, q, false)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	qs := f.query()
	render(w, http.StatusOK, "grants", grantsView{Title: "All grants", Nav: nav{caller.Email, "admin"},
		Grants: p.rows(gs), Filters: f, ForAdmin: true, Export: qs.Encode(), Empty: "No grant matches."})
}

func (p *Portal) adminExport(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "json" {
		renderError(w, http.StatusBadRequest, "Unknown format", "Exports are CSV or JSON.")
		return
	}
	_, q := filtersOf(r)
	q.Limit = 0
	gs, err := p.cfg.Intake.ListAll(r.Context(), caller, q, true)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if err := p.cfg.Export(w, format, gs); err != nil {
		p.log.WarnContext(r.Context(), "export interrupted", "error", err)
	}
}

type policyView struct {
	Title        string
	Nav          nav
	Version      string
	Environments []envRow
	Document     string
	// Issues is the lint of the document in force (empty: it is in force
	// because it passed); Rejected a newer version refused, with why.
	Issues     []string
	Rejected   string
	RejectedAt timeView
	Why        string
}

type envRow struct {
	Name         string
	Entitlements int
	Classic      bool
}

func (p *Portal) adminPolicy(w http.ResponseWriter, r *http.Request) {
	caller, ok := p.caller(w, r)
	if !ok {
		return
	}
	pol, version, err := p.cfg.Intake.PolicyInForce(r.Context(), caller)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := policyView{Title: "Policy in force", Nav: nav{caller.Email, "policy"}, Version: version, Document: string(pol.Source)}
	count := map[*policy.Environment]int{}
	for _, g := range pol.Groups() {
		count[g.System().Environment()]++
	}
	for _, env := range pol.Environments() {
		v.Environments = append(v.Environments, envRow{Name: env.Name, Entitlements: count[env], Classic: env.Classic != nil})
	}
	if len(pol.Source) > 0 {
		if _, issues := policy.Parse(pol.Source); issues != nil {
			for _, i := range issues {
				v.Issues = append(v.Issues, i.String())
			}
		}
	}
	if p.cfg.Status != nil {
		if rv, at, why := p.cfg.Status(); rv != "" {
			v.Rejected, v.RejectedAt = rv, newTimeView(at)
			if why != nil {
				v.Why = why.Error()
			}
		}
	}
	render(w, http.StatusOK, "policy", v)
}
