package plansummary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// MaxInput bounds how much plan JSON is read. A plan of a few thousand
// resources is a few MiB; anything near this is not a plan.
const MaxInput = 256 << 20

// Plan is the part of `terraform show -json PLANFILE` the summary reads
// (https://developer.hashicorp.com/terraform/internals/json-format).
type Plan struct {
	FormatVersion    string           `json:"format_version"`
	TerraformVersion string           `json:"terraform_version"`
	ResourceChanges  []ResourceChange `json:"resource_changes"`
	ResourceDrift    []ResourceChange `json:"resource_drift"`
	Configuration    *Configuration   `json:"configuration"`
	PriorState       *State           `json:"prior_state"`
	Errored          bool             `json:"errored"`

	// Present only in what is not a plan; used to say what was given.
	Values      json.RawMessage `json:"values"`
	PlannedVals json.RawMessage `json:"planned_values"`
}

// ResourceChange is one entry of resource_changes or resource_drift.
type ResourceChange struct {
	Address       string `json:"address"`
	ModuleAddress string `json:"module_address"`
	Mode          string `json:"mode"`
	Type          string `json:"type"`
	Name          string `json:"name"`
	ProviderName  string `json:"provider_name"`
	Change        Change `json:"change"`
	ActionReason  string `json:"action_reason"`
}

// Change is a resource's before/after.
type Change struct {
	Actions      []string        `json:"actions"`
	Before       json.RawMessage `json:"before"`
	After        json.RawMessage `json:"after"`
	AfterUnknown json.RawMessage `json:"after_unknown"`
	ReplacePaths [][]any         `json:"replace_paths"`
}

// State is the plan's prior_state: the refreshed values, and what each
// resource depends on for this apply (Terraform merges what it depended
// on when last applied with what the configuration refers to now, and
// orders destroys by that, since a removed resource has no configuration).
type State struct {
	Values *struct {
		RootModule StateModule `json:"root_module"`
	} `json:"values"`
}

// StateModule is one module of the prior state.
type StateModule struct {
	Resources []struct {
		Address   string          `json:"address"`
		DependsOn []string        `json:"depends_on"`
		Values    json.RawMessage `json:"values"`
	} `json:"resources"`
	ChildModules []StateModule `json:"child_modules"`
}

// Configuration is the plan's copy of the configuration: what each
// resource's expressions refer to and what it depends on.
type Configuration struct {
	RootModule ConfigModule `json:"root_module"`
}

// ConfigModule is one module of the configuration.
type ConfigModule struct {
	Resources   []ConfigResource      `json:"resources"`
	ModuleCalls map[string]ModuleCall `json:"module_calls"`
}

// ModuleCall is a module block.
type ModuleCall struct {
	Module ConfigModule `json:"module"`
}

// ConfigResource is one resource block.
type ConfigResource struct {
	Address     string                     `json:"address"`
	Type        string                     `json:"type"`
	Expressions map[string]json.RawMessage `json:"expressions"`
	DependsOn   []string                   `json:"depends_on"`
}

// Our resource types.
const (
	typeModel    = "mlregistry_model"
	typeVersion  = "mlregistry_model_version"
	typeStage    = "mlregistry_stage_assignment"
	typeEndpoint = "mlregistry_endpoint"
)

// ErrNotPlan is wrapped by the errors for input that is not the JSON of a
// saved plan.
var ErrNotPlan = errors.New("not the JSON of `terraform show -json PLANFILE`")

// ParsePlan reads plan JSON. It never panics: malformed, truncated or
// foreign JSON is an error that says what was expected.
func ParsePlan(r io.Reader) (*Plan, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read plan JSON: %w", err)
	}
	if len(data) > MaxInput {
		return nil, fmt.Errorf("%w: input is larger than %d MiB", ErrNotPlan, MaxInput>>20)
	}
	return parsePlanBytes(data)
}

func parsePlanBytes(data []byte) (*Plan, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: the input is empty (run `terraform plan -out=tfplan` then `terraform show -json tfplan`)", ErrNotPlan)
	}
	if trimmed[0] != '{' {
		hint := ""
		if bytes.Contains(trimmed[:min(len(trimmed), 4096)], []byte("Terraform will perform")) || bytes.Contains(trimmed[:min(len(trimmed), 4096)], []byte("Plan:")) {
			hint = " (this looks like the human-readable plan; use `terraform show -json PLANFILE`)"
		}
		return nil, fmt.Errorf("%w: expected a JSON object%s", ErrNotPlan, hint)
	}
	var p Plan
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotPlan, describeJSONError(trimmed, err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: more than one JSON value (is this `terraform plan -json` streaming output? use `terraform show -json PLANFILE`)", ErrNotPlan)
	}
	if p.FormatVersion == "" {
		return nil, fmt.Errorf("%w: no format_version member, so this is not Terraform's JSON output", ErrNotPlan)
	}
	major, _, _ := strings.Cut(p.FormatVersion, ".")
	if major != "1" {
		return nil, fmt.Errorf("%w: format_version %q is not supported (this tool reads format 1.x)", ErrNotPlan, p.FormatVersion)
	}
	if p.ResourceChanges == nil && p.PlannedVals == nil {
		if p.Values != nil {
			return nil, fmt.Errorf("%w: this is state JSON (`terraform show -json` without a plan file); pass the JSON of a saved plan", ErrNotPlan)
		}
		return nil, fmt.Errorf("%w: it has no resource_changes or planned_values", ErrNotPlan)
	}
	for i, rc := range append(append([]ResourceChange{}, p.ResourceChanges...), p.ResourceDrift...) {
		if rc.Address == "" || rc.Type == "" {
			return nil, fmt.Errorf("%w: resource change %d has no address or type", ErrNotPlan, i)
		}
	}
	return &p, nil
}

func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		return fmt.Sprintf("member %q at line %d, column %d is a JSON %s, not what a plan has there", typ.Field, line, col, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early (truncated?)"
	}
	return err.Error()
}

func position(data []byte, off int64) (line, col int) {
	off = max(0, min(off, int64(len(data))))
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// ours reports whether a resource change is one of this provider's
// managed resources.
func ours(rc ResourceChange) bool {
	if rc.Mode != "" && rc.Mode != "managed" {
		return false
	}
	switch rc.Type {
	case typeModel, typeVersion, typeStage, typeEndpoint:
		return true
	}
	return false
}

// Action is what a plan does to one resource.
type Action string

// Actions.
const (
	ActionNoop    Action = "no-op"
	ActionCreate  Action = "create"
	ActionUpdate  Action = "update"
	ActionReplace Action = "replace"
	ActionDelete  Action = "delete"
	ActionOther   Action = "other"
)

func (c Change) action() Action {
	a := c.Actions
	switch {
	case len(a) == 1 && a[0] == "no-op":
		return ActionNoop
	case len(a) == 1 && a[0] == "create":
		return ActionCreate
	case len(a) == 1 && a[0] == "update":
		return ActionUpdate
	case len(a) == 1 && a[0] == "delete":
		return ActionDelete
	case len(a) == 2 && (a[0] == "delete" || a[0] == "create"):
		return ActionReplace
	}
	return ActionOther
}

// decodeVals decodes a before or after object; null gives false.
func decodeVals(raw json.RawMessage, out any) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, err
	}
	return true, nil
}

// decodeChange decodes a resource change's before and after values; hasB
// and hasA say whether each side exists. side prefixes "before"/"after"
// in errors (e.g. "drift ").
func decodeChange[T any](rc ResourceChange, side string) (before, after T, hasB, hasA bool, err error) {
	if hasB, err = decodeVals(rc.Change.Before, &before); err != nil {
		return before, after, false, false, decodeErr(rc, side+"before", err)
	}
	if hasA, err = decodeVals(rc.Change.After, &after); err != nil {
		return before, after, false, false, decodeErr(rc, side+"after", err)
	}
	return before, after, hasB, hasA, nil
}

// unknownAt reports whether after_unknown marks the given top-level
// attribute (or anything under it) as unknown.
func unknownAt(raw json.RawMessage, attr string) bool {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	return anyTrue(m[attr])
}

func anyTrue(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case []any:
		for _, e := range x {
			if anyTrue(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if anyTrue(e) {
				return true
			}
		}
	}
	return false
}

// replacePaths renders replace_paths as attribute names.
func (c Change) replacePaths() []string {
	var out []string
	for _, p := range c.ReplacePaths {
		var parts []string
		for _, step := range p {
			parts = append(parts, fmt.Sprint(step))
		}
		if len(parts) > 0 {
			out = append(out, strings.Join(parts, "."))
		}
	}
	sort.Strings(out)
	return out
}

// changedAttrs lists the top-level attributes whose before and after
// differ, skipping the ones in ignore.
func changedAttrs(before, after json.RawMessage, unknown json.RawMessage, ignore ...string) []string {
	var b, a map[string]json.RawMessage
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	var u map[string]any
	_ = json.Unmarshal(unknown, &u)
	skip := map[string]bool{}
	for _, s := range ignore {
		skip[s] = true
	}
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if skip[k] {
			continue
		}
		if anyTrue(u[k]) {
			out = append(out, k)
			continue
		}
		if !jsonEqual(b[k], a[k]) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// jsonEqual compares two JSON values semantically; null, absent, {} and
// [] are alike (the provider treats null and empty alike).
func jsonEqual(x, y json.RawMessage) bool {
	var a, b any
	_ = json.Unmarshal(x, &a)
	_ = json.Unmarshal(y, &b)
	return equalValues(a, b)
}

func equalValues(a, b any) bool {
	if isEmpty(a) && isEmpty(b) {
		return true
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range x {
			if !equalValues(v, y[k]) {
				return false
			}
		}
		for k, v := range y {
			if _, ok := x[k]; !ok && !isEmpty(v) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// configIndex knows, per resource address, what its configuration refers
// to, so a value unknown at plan time (a version created in the same
// apply) can be named, and the order of two stage moves known.
type configIndex struct {
	// refs: resource address (without instance keys) -> attribute ->
	// resource addresses referred to.
	refs map[string]map[string][]string
	// deps: resource address -> every resource it refers to or depends on.
	deps map[string][]string
	// stateDeps: resource address -> what it depends on in the prior
	// state.
	stateDeps map[string][]string
	// refreshed: resource address (with instance keys) -> its refreshed
	// values in the prior state.
	refreshed map[string]json.RawMessage
}

func newConfigIndex(c *Configuration, st *State) *configIndex {
	ix := &configIndex{refs: map[string]map[string][]string{}, deps: map[string][]string{}, stateDeps: map[string][]string{}, refreshed: map[string]json.RawMessage{}}
	if c != nil {
		ix.addModule("", c.RootModule, 0)
	}
	ix.addState(st)
	return ix
}

func (ix *configIndex) addState(st *State) {
	if st == nil || st.Values == nil {
		return
	}
	var walk func(m StateModule, depth int)
	walk = func(m StateModule, depth int) {
		if depth > 32 {
			return
		}
		for _, r := range m.Resources {
			ix.refreshed[r.Address] = r.Values
			addr := configAddress(r.Address)
			for _, d := range r.DependsOn {
				ix.stateDeps[addr] = append(ix.stateDeps[addr], configAddress(d))
			}
		}
		for _, c := range m.ChildModules {
			walk(c, depth+1)
		}
	}
	walk(st.Values.RootModule, 0)
}

// ordered reports whether Terraform orders from after to: from refers to
// or depends on to in the configuration or, as last applied, in the
// prior state (which is what orders a destroy).
func (ix *configIndex) ordered(from, to string) bool {
	return ix.dependsOn(from, to) || reaches(ix.stateDeps, configAddress(from), configAddress(to))
}

func (ix *configIndex) addModule(prefix string, m ConfigModule, depth int) {
	if depth > 32 {
		return
	}
	for _, r := range m.Resources {
		addr := prefix + r.Address
		attrs := map[string][]string{}
		var all []string
		for name, raw := range r.Expressions {
			refs := resourceRefs(prefix, collectRefs(raw, 0))
			attrs[name] = refs
			all = append(all, refs...)
		}
		for _, d := range r.DependsOn {
			all = append(all, resourceRefs(prefix, []string{d})...)
		}
		ix.refs[addr] = attrs
		ix.deps[addr] = all
	}
	names := make([]string, 0, len(m.ModuleCalls))
	for n := range m.ModuleCalls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ix.addModule(prefix+"module."+n+".", m.ModuleCalls[n].Module, depth+1)
	}
}

// collectRefs gathers every "references" list in an expression tree
// (nested attributes nest expressions).
func collectRefs(raw json.RawMessage, depth int) []string {
	if depth > 64 {
		return nil
	}
	var out []string
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		for k, v := range obj {
			if k == "references" {
				var refs []string
				if json.Unmarshal(v, &refs) == nil {
					out = append(out, refs...)
				}
				continue
			}
			out = append(out, collectRefs(v, depth+1)...)
		}
		return out
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil {
		for _, v := range arr {
			out = append(out, collectRefs(v, depth+1)...)
		}
	}
	return out
}

// resourceRefs turns references ("mlregistry_model_version.v2.version",
// "mlregistry_model_version.v2") into resource addresses, deduplicated.
func resourceRefs(prefix string, refs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, ref := range refs {
		parts := strings.Split(ref, ".")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], "mlregistry_") {
			continue
		}
		name := parts[1]
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		addr := prefix + parts[0] + "." + name
		if !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	sort.Strings(out)
	return out
}

// configAddress strips instance keys ([0], ["a"]) from a resource address.
func configAddress(addr string) string {
	var b strings.Builder
	depth := 0
	for _, r := range addr {
		switch {
		case r == '[':
			depth++
		case r == ']' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// dependsOn reports whether from (transitively) depends on to.
func (ix *configIndex) dependsOn(from, to string) bool {
	return reaches(ix.deps, configAddress(from), configAddress(to))
}

func reaches(deps map[string][]string, from, to string) bool {
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range deps[n] {
			if d == to {
				return true
			}
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}
