package ui

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// Page sizes. The models page and the versions table read one page of the
// store's keyset pagination, so their cost does not grow with the total.
const (
	modelsPageSize       = 100
	versionsPageSize     = 100
	maxVersionsPageSize  = 1000
	eventsPageSize       = 100
	historyPerStage      = 10
	maxMetricColumns     = 12
	searchScanLimit      = 100000
	eventScanLimit       = 5000
	modelSearchPageLimit = 1000
)

func (h *Handler) base(u *user, title, nav, api string) base {
	return base{Title: title, Nav: nav, User: u, Insecure: h.insecure, API: api}
}

// --- models -----------------------------------------------------------------

type modelRow struct {
	registry.Model
	Stages     []registry.StageAssignment
	Latest     int64
	LastChange time.Time
}

type modelsData struct {
	base
	Query     string
	Rows      []modelRow
	Next      string
	More      int
	Searching bool
}

func (h *Handler) models(r *http.Request, u *user) (view, error) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := modelsData{base: h.base(u, "Models", "models", "/api/v1/models"), Query: q, Searching: q != ""}
	var models []registry.Model
	if q == "" {
		page, err := h.store.ListModels(ctx, registry.ListOptions{PageSize: modelsPageSize, PageToken: r.URL.Query().Get("page_token")})
		if err != nil {
			return view{}, err
		}
		models = page.Items
		if page.NextPageToken != "" {
			d.Next = "/ui/?" + url.Values{"page_token": {page.NextPageToken}}.Encode()
		}
	} else {
		// The API has no search: read the list in large pages and keep
		// matches (names, owners, descriptions, tags).
		needle := strings.ToLower(q)
		token := ""
		for scanned := 0; scanned < searchScanLimit; {
			page, err := h.store.ListModels(ctx, registry.ListOptions{PageSize: modelSearchPageLimit, PageToken: token})
			if err != nil {
				return view{}, err
			}
			scanned += len(page.Items)
			for _, m := range page.Items {
				if modelMatches(m, needle) {
					if len(models) < modelsPageSize {
						models = append(models, m)
					} else {
						d.More++
					}
				}
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
	d.Rows = make([]modelRow, len(models))
	for i, m := range models {
		row := modelRow{Model: m, LastChange: m.UpdatedAt}
		stages, err := h.store.ListStages(ctx, m.Name)
		if err != nil {
			return view{}, err
		}
		row.Stages = stages
		for _, s := range stages {
			if s.AssignedAt.After(row.LastChange) {
				row.LastChange = s.AssignedAt
			}
		}
		latest, err := h.store.ListVersions(ctx, m.Name, registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: 1}, OrderBy: "version desc"})
		if err != nil {
			return view{}, err
		}
		if len(latest.Items) > 0 {
			v := latest.Items[0]
			row.Latest = v.Version
			if v.UpdatedAt.After(row.LastChange) {
				row.LastChange = v.UpdatedAt
			}
		}
		d.Rows[i] = row
	}
	return view{"models", d}, nil
}

func modelMatches(m registry.Model, needle string) bool {
	if strings.Contains(m.Name, needle) || strings.Contains(strings.ToLower(m.Owner), needle) ||
		strings.Contains(strings.ToLower(m.Description), needle) {
		return true
	}
	for k, v := range m.Tags {
		if strings.Contains(strings.ToLower(k+"="+v), needle) {
			return true
		}
	}
	return false
}

// --- a model ----------------------------------------------------------------

type stageView struct {
	registry.StageAssignment
	History []registry.StageHistoryEntry
	// MoreHistory links the stage's full history in the API.
	MoreHistory bool
}

type sortLink struct {
	Label  string
	Href   string
	Active string // "", "asc" or "desc"
}

type versionRow struct {
	registry.ModelVersion
	Metrics []metricCell
}

type metricCell struct {
	Value string
	OK    bool
}

type modelData struct {
	base
	Model       *registry.Model
	Stages      []stageView
	Columns     []sortLink
	VersionSort sortLink
	Rows        []versionRow
	Next        string
	First       string
	Paged       bool
	StageFilter string
	StageNames  []string
	Chart       *chart
	MetricNames []string
	Metric      string
	Sort        string
	Policies    []policyView
}

type policyView struct {
	Stage string
	Rules []string
}

func (h *Handler) model(r *http.Request, u *user) (view, error) {
	ctx := r.Context()
	name := r.PathValue("model")
	q := r.URL.Query()
	m, err := h.store.GetModel(ctx, name)
	if err != nil {
		return view{}, err
	}
	stages, err := h.store.ListStages(ctx, name)
	if err != nil {
		return view{}, err
	}
	d := modelData{base: h.base(u, m.Name, "models", "/api/v1/models/"+url.PathEscape(m.Name)), Model: m}
	d.Policies = policies(m.StagePolicies)
	for _, s := range stages {
		hist, err := h.store.StageHistory(ctx, name, s.Stage, registry.ListOptions{PageSize: historyPerStage})
		if err != nil {
			return view{}, err
		}
		d.Stages = append(d.Stages, stageView{StageAssignment: s, History: hist.Items, MoreHistory: hist.NextPageToken != ""})
		d.StageNames = append(d.StageNames, s.Stage)
	}

	sort := q.Get("sort")
	if sort == "" {
		sort = "version desc"
	}
	size := versionsPageSize
	if n, err := strconv.Atoi(q.Get("page_size")); err == nil && n > 0 {
		size = min(n, maxVersionsPageSize)
	}
	f := registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: size, PageToken: q.Get("page_token")}, OrderBy: sort}
	if st := q.Get("stage"); st != "" && slices.Contains(d.StageNames, st) {
		f.Stage, d.StageFilter = st, st
	}
	page, err := h.store.ListVersions(ctx, name, f)
	if err != nil {
		return view{}, err
	}
	d.Sort = sort
	d.Paged = f.PageToken != ""

	link := func(over url.Values) string {
		v := url.Values{}
		if sort != "version desc" {
			v.Set("sort", sort)
		}
		if d.StageFilter != "" {
			v.Set("stage", d.StageFilter)
		}
		if size != versionsPageSize {
			v.Set("page_size", strconv.Itoa(size))
		}
		if mt := q.Get("metric"); mt != "" {
			v.Set("metric", mt)
		}
		for k, vals := range over {
			v[k] = vals
		}
		for k, vals := range v {
			if len(vals) == 1 && vals[0] == "" {
				delete(v, k)
			}
		}
		s := "/ui/models/" + url.PathEscape(name)
		if len(v) > 0 {
			s += "?" + v.Encode()
		}
		return s
	}
	if page.NextPageToken != "" {
		d.Next = link(url.Values{"page_token": {page.NextPageToken}})
	}
	d.First = link(nil)

	// Metric columns: the metrics of the versions on this page.
	names := map[string]bool{}
	for _, v := range page.Items {
		for k := range v.Metrics {
			names[k] = true
		}
	}
	metricNames := slices.Sorted(maps.Keys(names))
	d.MetricNames = metricNames
	cols := metricNames
	if len(cols) > maxMetricColumns {
		cols = cols[:maxMetricColumns]
	}
	sortBy := func(key, label string) sortLink {
		l := sortLink{Label: label}
		next := key
		switch sort {
		case key:
			l.Active, next = "asc", key+" desc"
		case key + " desc":
			l.Active = "desc"
		}
		l.Href = link(url.Values{"sort": {next}, "page_token": {""}})
		return l
	}
	d.VersionSort = sortBy("version", "Version")
	for _, c := range cols {
		d.Columns = append(d.Columns, sortBy("metrics."+c, c))
	}
	d.Rows = make([]versionRow, len(page.Items))
	for i, v := range page.Items {
		row := versionRow{ModelVersion: v, Metrics: make([]metricCell, len(cols))}
		for j, c := range cols {
			if x, ok := v.Metrics[c]; ok {
				row.Metrics[j] = metricCell{Value: fmtMetric(x), OK: true}
			}
		}
		d.Rows[i] = row
	}

	d.Metric = q.Get("metric")
	if !names[d.Metric] {
		d.Metric = ""
		if len(metricNames) > 0 {
			d.Metric = metricNames[0]
		}
	}
	if d.Metric != "" {
		d.Chart = buildChart(name, d.Metric, page.Items, stages)
	}
	return view{"model", d}, nil
}

func policies(p map[string]registry.StagePolicy) []policyView {
	var out []policyView
	for _, stage := range slices.Sorted(maps.Keys(p)) {
		sp := p[stage]
		var rules []string
		if sp.RequireStage != "" {
			r := "held " + sp.RequireStage
			if sp.MinSoak != "" {
				r += " for " + sp.MinSoak
			}
			rules = append(rules, r)
		}
		for _, k := range slices.Sorted(maps.Keys(sp.MinMetrics)) {
			rules = append(rules, k+" ≥ "+fmtMetric(sp.MinMetrics[k]))
		}
		for _, k := range slices.Sorted(maps.Keys(sp.MaxMetrics)) {
			rules = append(rules, k+" ≤ "+fmtMetric(sp.MaxMetrics[k]))
		}
		if sp.RequireSignatureMatch {
			rules = append(rules, "same signature as the current version")
		}
		for _, k := range slices.Sorted(maps.Keys(sp.MinLiveMetrics)) {
			rules = append(rules, fmt.Sprintf("live %s ≥ %s (at least %d trusted values, last %s)", k, fmtMetric(sp.MinLiveMetrics[k]), sp.LiveCount(), registry.FormatWindow(registry.PolicyLiveWindow)))
		}
		if len(rules) == 0 {
			rules = []string{"no rules"}
		}
		out = append(out, policyView{Stage: stage, Rules: rules})
	}
	return out
}

// --- a version --------------------------------------------------------------

type kv struct{ Key, Value string }

type eventRow struct {
	registry.Event
	Link   string
	Before string
	After  string
}

type versionData struct {
	base
	V          *registry.ModelVersion
	Parameters []kv
	Metrics    []kv
	Tags       []kv
	Held       []string
	Events     []eventRow
	Truncated  bool
	EventsLink string
}

func (h *Handler) version(r *http.Request, u *user) (view, error) {
	ctx := r.Context()
	name := r.PathValue("model")
	n, err := strconv.ParseInt(r.PathValue("version"), 10, 64)
	if err != nil || n <= 0 {
		return view{}, registry.Errorf(registry.CodeNotFound, "version %q is not a version number", r.PathValue("version"))
	}
	v, err := h.store.GetVersion(ctx, name, n)
	if err != nil {
		return view{}, err
	}
	api := fmt.Sprintf("/api/v1/models/%s/versions/%d", url.PathEscape(name), n)
	d := versionData{base: h.base(u, fmt.Sprintf("%s v%d", name, n), "models", api), V: v}
	d.Parameters = sortedKV(v.Parameters)
	d.Tags = sortedKV(v.Tags)
	for _, k := range slices.Sorted(maps.Keys(v.Metrics)) {
		d.Metrics = append(d.Metrics, kv{k, fmtMetric(v.Metrics[k])})
	}
	d.EventsLink = "/ui/events?" + url.Values{"model": {name}}.Encode()

	// Everything that happened to the version happened after it was
	// created: scan the model's events from then on (bounded) for the
	// version's own events and the stage changes that involve it.
	subject := fmt.Sprintf("%s/%d", name, n)
	held := map[string]bool{}
	for _, s := range v.Stages {
		held[s] = true
	}
	token, scanned := "", 0
	for {
		page, err := h.store.ListEvents(ctx, registry.EventFilter{Model: name, Since: v.CreatedAt, ListOptions: registry.ListOptions{PageSize: 1000, PageToken: token}})
		if err != nil {
			return view{}, err
		}
		scanned += len(page.Items)
		for _, e := range page.Items {
			switch {
			case e.SubjectType == "model_version" && e.Subject == subject:
			case e.SubjectType == "stage":
				var before, after struct {
					Stage   string `json:"stage"`
					Version int64  `json:"version"`
				}
				_ = json.Unmarshal(e.Before, &before)
				_ = json.Unmarshal(e.After, &after)
				if after.Version == n {
					held[after.Stage] = true
				} else if before.Version != n {
					continue
				}
			default:
				continue
			}
			d.Events = append(d.Events, h.eventRow(e))
		}
		if token = page.NextPageToken; token == "" {
			break
		}
		if scanned >= eventScanLimit {
			d.Truncated = true
			break
		}
	}
	d.Held = slices.Sorted(maps.Keys(held))
	return view{"version", d}, nil
}

func sortedKV(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, kv{k, m[k]})
	}
	return out
}

// --- endpoints --------------------------------------------------------------

type routeView struct {
	registry.Route
	Configured int
	Changed    bool
	Window     *RouteWindow
	ErrorRate  float64
	Bar        bar
}

// bar draws configured (outline) and observed (filled) weight out of 100.
type bar struct{ Configured, Observed int }

type endpointView struct {
	registry.Endpoint
	Routes []routeView
}

type endpointsData struct {
	base
	Endpoints []endpointView
	Next      string
}

func (h *Handler) endpoints(r *http.Request, u *user) (view, error) {
	page, err := h.store.ListEndpoints(r.Context(), registry.ListOptions{PageSize: modelsPageSize, PageToken: r.URL.Query().Get("page_token")})
	if err != nil {
		return view{}, err
	}
	d := endpointsData{base: h.base(u, "Endpoints", "endpoints", "/api/v1/endpoints")}
	for _, e := range page.Items {
		ev := endpointView{Endpoint: e}
		// While a rollout runs, the gateway serves its weights.
		for _, rt := range e.RoutesInForce() {
			ev.Routes = append(ev.Routes, routeView{Route: rt, Configured: rt.Weight, Bar: bar{rt.Weight, rt.Weight}})
		}
		d.Endpoints = append(d.Endpoints, ev)
	}
	if page.NextPageToken != "" {
		d.Next = "/ui/endpoints?" + url.Values{"page_token": {page.NextPageToken}}.Encode()
	}
	return view{"endpoints", d}, nil
}

// rolloutView is the endpoint's rollout: its configuration, where the
// latest rollout stands and, while it runs, the weights in force.
type rolloutView struct {
	registry.RolloutSpec
	Status *registry.RolloutStatus
	// Active: progressing or paused, so the gateway serves InForce.
	Active bool
	// Percent is the step's percent of the way to the configured routes.
	Percent int
	InForce []routeView
}

type endpointData struct {
	base
	E           endpointView
	Rollout     *rolloutView
	GuardEvents []eventRow
	Events      []eventRow
	Windows     bool
	EventsLink  string
}

func (h *Handler) endpoint(r *http.Request, u *user) (view, error) {
	ctx := r.Context()
	name := r.PathValue("endpoint")
	e, err := h.store.GetEndpoint(ctx, name)
	if err != nil {
		return view{}, err
	}
	d := endpointData{base: h.base(u, "Endpoint "+e.Name, "endpoints", "/api/v1/endpoints/"+url.PathEscape(name)),
		EventsLink: "/ui/events?" + url.Values{"endpoint": {name}}.Encode()}

	// Configured weights are the routes a user last wrote (the newest
	// create or update event that set routes); the endpoint itself holds
	// the observed ones, which the guard or a flag may have moved.
	configured := map[string]int{}
	var lastWrite *registry.Event
	token, scanned := "", 0
	for {
		page, err := h.store.ListEvents(ctx, registry.EventFilter{Endpoint: name, Since: e.CreatedAt, ListOptions: registry.ListOptions{PageSize: 1000, PageToken: token}})
		if err != nil {
			return view{}, err
		}
		scanned += len(page.Items)
		for i := range page.Items {
			ev := page.Items[i]
			switch ev.Action {
			case registry.ActionEndpointCreate, registry.ActionEndpointUpdate:
				lastWrite = &page.Items[i]
			case registry.ActionEndpointGuardRollback, registry.ActionEndpointGuardDegraded, registry.ActionEndpointFlagDrain,
				registry.ActionEndpointRolloutStarted, registry.ActionEndpointRolloutStep, registry.ActionEndpointRolloutPaused,
				registry.ActionEndpointRolloutResumed, registry.ActionEndpointRolloutAborted, registry.ActionEndpointRolloutRolledBack,
				registry.ActionEndpointRolloutCompleted:
				d.GuardEvents = append(d.GuardEvents, h.eventRow(ev))
			}
		}
		if token = page.NextPageToken; token == "" || scanned >= eventScanLimit {
			break
		}
	}
	if lastWrite != nil {
		var after struct {
			Routes []registry.Route `json:"routes"`
		}
		if json.Unmarshal(lastWrite.After, &after) == nil {
			for _, rt := range after.Routes {
				configured[rt.Name] = rt.Weight
			}
		}
	}
	windows := map[string]RouteWindow{}
	if h.guardWindow != nil && e.Guard != nil {
		d.Windows = true
		for _, w := range h.guardWindow(name) {
			windows[w.Route] = w
		}
	}
	d.E = endpointView{Endpoint: *e}
	if d.E.URL == "" {
		// The store does not know the public address; this request does.
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		d.E.URL = scheme + "://" + r.Host + "/serve/" + url.PathEscape(e.Name) + "/"
	}
	for _, rt := range e.Routes {
		rv := routeView{Route: rt, Configured: rt.Weight}
		if c, ok := configured[rt.Name]; ok {
			rv.Configured = c
		}
		rv.Changed = rv.Configured != rt.Weight
		rv.Bar = bar{rv.Configured, rt.Weight}
		if w, ok := windows[rt.Name]; ok {
			rv.Window = &w
			if w.Requests > 0 {
				rv.ErrorRate = float64(w.Errors) / float64(w.Requests)
			}
		}
		d.E.Routes = append(d.E.Routes, rv)
	}
	if ro := e.Rollout; ro != nil {
		rv := &rolloutView{RolloutSpec: ro.RolloutSpec, Status: ro.RolloutStatus, Active: registry.RolloutActive(ro.RolloutStatus)}
		if st := ro.RolloutStatus; st != nil && st.Step >= 1 && st.Step <= len(st.StepPercents) {
			rv.Percent = st.StepPercents[st.Step-1]
		}
		if rv.Active {
			for _, rt := range ro.Routes {
				v := routeView{Route: rt, Configured: rt.Weight, Bar: bar{rt.Weight, rt.Weight}}
				if w, ok := windows[rt.Name]; ok {
					v.Window = &w
					if w.Requests > 0 {
						v.ErrorRate = float64(w.Errors) / float64(w.Requests)
					}
				}
				rv.InForce = append(rv.InForce, v)
			}
		}
		d.Rollout = rv
	}
	slices.Reverse(d.GuardEvents)
	return view{"endpoint", d}, nil
}

// --- the audit log ----------------------------------------------------------

type eventsData struct {
	base
	Model, Endpoint, Actor, Since string
	Events                        []eventRow
	Next                          string
	Scanned                       bool
}

func (h *Handler) events(r *http.Request, u *user) (view, error) {
	q := r.URL.Query()
	d := eventsData{Model: q.Get("model"), Endpoint: q.Get("endpoint"), Actor: strings.TrimSpace(q.Get("actor")), Since: strings.TrimSpace(q.Get("since"))}
	f := registry.EventFilter{Model: d.Model, Endpoint: d.Endpoint, ListOptions: registry.ListOptions{PageSize: eventsPageSize, PageToken: q.Get("page_token")}}
	api := url.Values{}
	for k, v := range map[string]string{"model": d.Model, "endpoint": d.Endpoint, "since": d.Since} {
		if v != "" {
			api.Set(k, v)
		}
	}
	if d.Since != "" {
		t, err := registry.ParseSince("since", d.Since, time.Now())
		if err != nil {
			return view{}, err
		}
		f.Since = t
		api.Set("since", t.UTC().Format(time.RFC3339))
	}
	apiURL := "/api/v1/events"
	if len(api) > 0 {
		apiURL += "?" + api.Encode()
	}
	d.base = h.base(u, "Audit log", "events", apiURL)
	// The API filters by model, endpoint and time; the actor filter is
	// applied here, reading whole pages until one page of matches.
	if d.Actor != "" {
		f.PageSize = 500
	}
	scanned := 0
	for {
		page, err := h.store.ListEvents(r.Context(), f)
		if err != nil {
			return view{}, err
		}
		scanned += len(page.Items)
		for _, e := range page.Items {
			if d.Actor == "" || e.Actor == d.Actor {
				d.Events = append(d.Events, h.eventRow(e))
			}
		}
		f.PageToken = page.NextPageToken
		if f.PageToken == "" || d.Actor == "" || len(d.Events) >= eventsPageSize || scanned >= eventScanLimit {
			break
		}
	}
	if f.PageToken != "" {
		v := url.Values{"page_token": {f.PageToken}}
		for k, x := range map[string]string{"model": d.Model, "endpoint": d.Endpoint, "actor": d.Actor, "since": d.Since} {
			if x != "" {
				v.Set(k, x)
			}
		}
		d.Next = "/ui/events?" + v.Encode()
		d.Scanned = d.Actor != "" && len(d.Events) < eventsPageSize
	}
	return view{"events", d}, nil
}

func (h *Handler) eventRow(e registry.Event) eventRow {
	return eventRow{Event: e, Link: subjectLink(e), Before: prettyJSON(e.Before), After: prettyJSON(e.After)}
}

// subjectLink points an event at the page of what it changed.
func subjectLink(e registry.Event) string {
	switch e.SubjectType {
	case "model":
		return "/ui/models/" + url.PathEscape(e.Subject)
	case "model_version":
		if m, v, ok := strings.Cut(e.Subject, "/"); ok {
			return "/ui/models/" + url.PathEscape(m) + "/versions/" + url.PathEscape(v)
		}
	case "stage":
		if m, s, ok := strings.Cut(e.Subject, "/"); ok {
			return "/ui/models/" + url.PathEscape(m) + "#stage-" + s
		}
	case "endpoint":
		return "/ui/endpoints/" + url.PathEscape(e.Subject)
	}
	return ""
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(raw)
	}
	return string(b)
}
