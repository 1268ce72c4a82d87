package provider

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// Numbers.
//
// Terraform holds numbers at 512-bit precision (1/3, 0.8 + 0.00002 and a
// jsondecode of "0.714285714285714285" are not float64 values); the
// registry stores float64. Metrics and thresholds are therefore Number
// attributes, converted to the nearest float64 on the way to the registry,
// and two numbers are the same value when their float64s are equal: the
// registry's answer never differs from the configuration that wrote it.

// numberFloat64 converts a Terraform number to the float64 the registry
// stores; ok is false when the number is infinite or outside the float64
// range (including non-zero numbers that would round to zero).
func numberFloat64(bf *big.Float) (f float64, ok bool) {
	if bf == nil || bf.IsInf() {
		return 0, false
	}
	f, _ = bf.Float64()
	if math.IsInf(f, 0) || (f == 0 && bf.Sign() != 0) {
		return f, false
	}
	return f, true
}

// numberValue returns f as the number Terraform reads from the same
// literal in HCL: the shortest decimal that round-trips f, parsed at cty's
// 512-bit precision. A number built from the binary double (0.85 is
// 0.84999999999999997779...) would differ from the configuration's 0.85.
func numberValue(f float64) types.Number {
	bf, _, err := big.ParseFloat(strconv.FormatFloat(f, 'g', -1, 64), 10, 512, big.ToNearestEven)
	if err != nil {
		return types.NumberValue(big.NewFloat(f))
	}
	return types.NumberValue(bf)
}

// float64MapValue converts the registry's numbers to a map of Number. An
// element whose prior value (plan or state) means the same float64 keeps
// the prior value, so state holds what the configuration said.
func float64MapValue(ctx context.Context, m map[string]float64, prior types.Map) (types.Map, diag.Diagnostics) {
	if len(m) == 0 && !isKnown(prior) {
		return types.MapNull(types.NumberType), nil
	}
	var priorElems map[string]attr.Value
	if isKnown(prior) {
		priorElems = prior.Elements()
	}
	elems := make(map[string]attr.Value, len(m))
	for k, f := range m {
		if p, ok := priorElems[k].(types.Number); ok && isKnown(p) {
			if pf, ok := numberFloat64(p.ValueBigFloat()); ok && pf == f {
				elems[k] = p
				continue
			}
		}
		elems[k] = numberValue(f)
	}
	return types.MapValue(types.NumberType, elems)
}

// float64MapFrom converts a map of Number to float64s; null becomes an
// empty map (a patch that clears). The numberRange validator has already
// refused numbers a float64 cannot hold.
func float64MapFrom(ctx context.Context, m types.Map) (map[string]float64, diag.Diagnostics) {
	out := map[string]float64{}
	if !isKnown(m) {
		return out, nil
	}
	var nums map[string]*big.Float
	diags := m.ElementsAs(ctx, &nums, false)
	for k, bf := range nums {
		f, ok := numberFloat64(bf)
		if !ok {
			diags.AddError("Number out of range", fmt.Sprintf("%s = %s cannot be stored as a 64-bit float.", k, bf.Text('g', 10)))
			continue
		}
		out[k] = f
	}
	return out, diags
}

// numberFloat64Of returns the float64 of a Number attribute value.
func numberFloat64Of(n types.Number) float64 {
	f, _ := numberFloat64(n.ValueBigFloat())
	return f
}

// numberRange refuses numbers a float64 cannot hold, on Number attributes
// and on the elements of maps of Number.
type numberRange struct{}

var (
	_ validator.Number = numberRange{}
	_ validator.Map    = numberRange{}
)

func (numberRange) Description(context.Context) string {
	return "must be a finite number a 64-bit float can hold (magnitude between about 4.9e-324 and 1.8e308, or 0)"
}

func (v numberRange) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v numberRange) ValidateNumber(ctx context.Context, req validator.NumberRequest, resp *validator.NumberResponse) {
	if !isKnown(req.ConfigValue) {
		return
	}
	if _, ok := numberFloat64(req.ConfigValue.ValueBigFloat()); !ok {
		resp.Diagnostics.AddAttributeError(req.Path, "Number out of range",
			fmt.Sprintf("%s %s. Write the value in the metric's own unit so that it fits.", req.ConfigValue.ValueBigFloat().Text('g', 10), v.Description(ctx)))
	}
}

func (v numberRange) ValidateMap(ctx context.Context, req validator.MapRequest, resp *validator.MapResponse) {
	if !isKnown(req.ConfigValue) {
		return
	}
	for k, e := range req.ConfigValue.Elements() {
		n, ok := e.(types.Number)
		if !ok || !isKnown(n) {
			continue
		}
		if _, ok := numberFloat64(n.ValueBigFloat()); !ok {
			resp.Diagnostics.AddAttributeError(req.Path.AtMapKey(k), "Number out of range",
				fmt.Sprintf("%s = %s %s. Write the value in the metric's own unit so that it fits.", k, n.ValueBigFloat().Text('g', 10), v.Description(ctx)))
		}
	}
}

// Null versus empty, and numbers, in plans.
//
// An attribute left out and the same attribute written as {} (or "", [],
// an object of empty fields) mean the same thing to the registry, which
// stores neither; numbers mean the same when their float64s are equal.
// equivalent says so for any two values, and the plan modifiers below use
// it so that no replace decision and no update tells them apart:
// keepEquivalentState plans the prior state whenever the configuration is
// equivalent to it (Terraform accepts a planned value equal to a non-null
// prior value in place of the configuration's), and
// requiresReplaceUnlessEquivalent replaces only when the values differ.
// The pattern is terraform-provider-random's
// RequiresReplaceIfValuesNotNull, generalised to "equivalent".

// equivalent reports whether a and b are the same value to the registry.
// Unknown values are never equivalent to anything.
func equivalent(a, b tftypes.Value) bool {
	if !a.IsFullyKnown() || !b.IsFullyKnown() {
		return false
	}
	if isEmptyTF(a) && isEmptyTF(b) {
		return true
	}
	if a.IsNull() || b.IsNull() {
		return false
	}
	typ := a.Type()
	switch {
	case typ.Is(tftypes.Number):
		var x, y big.Float
		if a.As(&x) != nil || b.As(&y) != nil {
			return false
		}
		fx, okx := numberFloat64(&x)
		fy, oky := numberFloat64(&y)
		if !okx || !oky {
			return x.Cmp(&y) == 0
		}
		return fx == fy
	case typ.Is(tftypes.Map{}), typ.Is(tftypes.Object{}):
		var x, y map[string]tftypes.Value
		if a.As(&x) != nil || b.As(&y) != nil {
			return false
		}
		if typ.Is(tftypes.Map{}) && len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equivalent(xv, yv) {
				return false
			}
		}
		return true
	case typ.Is(tftypes.List{}), typ.Is(tftypes.Set{}), typ.Is(tftypes.Tuple{}):
		var x, y []tftypes.Value
		if a.As(&x) != nil || b.As(&y) != nil || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equivalent(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a.Equal(b)
	}
}

// isEmptyTF: null, "", an empty collection, or an object whose fields are
// all empty. Numbers and booleans are never empty (0 and false are values).
func isEmptyTF(v tftypes.Value) bool {
	if !v.IsKnown() {
		return false
	}
	if v.IsNull() {
		return true
	}
	typ := v.Type()
	switch {
	case typ.Is(tftypes.String):
		var s string
		return v.As(&s) == nil && s == ""
	case typ.Is(tftypes.Map{}), typ.Is(tftypes.Object{}):
		var m map[string]tftypes.Value
		if v.As(&m) != nil {
			return false
		}
		for _, e := range m {
			if !isEmptyTF(e) {
				return false
			}
		}
		return true
	case typ.Is(tftypes.List{}), typ.Is(tftypes.Set{}), typ.Is(tftypes.Tuple{}):
		var l []tftypes.Value
		return v.As(&l) == nil && len(l) == 0
	}
	return false
}

func attrEquivalent(ctx context.Context, a, b attr.Value) bool {
	x, errX := a.ToTerraformValue(ctx)
	y, errY := b.ToTerraformValue(ctx)
	return errX == nil && errY == nil && equivalent(x, y)
}

// keepEquivalentState plans the prior state value when the configuration
// is equivalent to it. It is for Optional+Computed attributes whose state
// is never null (the resource stores an empty value as {}, see
// emptyMap/emptyObject): when the configuration leaves the attribute out
// and the prior value is not empty (or on create), it plans the empty
// value instead of "known after apply".
type keepEquivalentState struct{}

var (
	_ planmodifier.Map    = keepEquivalentState{}
	_ planmodifier.Object = keepEquivalentState{}
)

func (keepEquivalentState) Description(context.Context) string {
	return "A value equivalent to the current one (null and empty alike; numbers with the same 64-bit float) is not a change."
}

func (m keepEquivalentState) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

// plan decides the planned value; ok is false when the plan stays as it is.
func (keepEquivalentState) plan(ctx context.Context, stateRaw tftypes.Value, config, state, empty attr.Value) (attr.Value, bool) {
	if config.IsUnknown() {
		return nil, false
	}
	if !stateRaw.IsNull() && !state.IsUnknown() && attrEquivalent(ctx, config, state) && (config.IsNull() || !state.IsNull()) {
		return state, true
	}
	if config.IsNull() {
		return empty, true
	}
	return nil, false
}

func (m keepEquivalentState) PlanModifyMap(ctx context.Context, req planmodifier.MapRequest, resp *planmodifier.MapResponse) {
	if v, ok := m.plan(ctx, req.State.Raw, req.ConfigValue, req.StateValue, emptyMap(req.ConfigValue)); ok {
		resp.PlanValue = v.(types.Map)
	}
}

func (m keepEquivalentState) PlanModifyObject(ctx context.Context, req planmodifier.ObjectRequest, resp *planmodifier.ObjectResponse) {
	if v, ok := m.plan(ctx, req.State.Raw, req.ConfigValue, req.StateValue, emptyObject(ctx, req.ConfigValue)); ok {
		resp.PlanValue = v.(types.Object)
	}
}

// emptyMap is {} of m's element type, or m when it is not null.
func emptyMap(m types.Map) types.Map {
	if !m.IsNull() {
		return m
	}
	return types.MapValueMust(m.ElementType(context.Background()), map[string]attr.Value{})
}

// emptyObject is o's type with every attribute null, or o when it is not
// null.
func emptyObject(ctx context.Context, o types.Object) types.Object {
	if !o.IsNull() {
		return o
	}
	attrTypes := o.AttributeTypes(ctx)
	values := make(map[string]attr.Value, len(attrTypes))
	for name, t := range attrTypes {
		v, err := t.ValueFromTerraform(ctx, tftypes.NewValue(t.TerraformType(ctx), nil))
		if err != nil {
			return o
		}
		values[name] = v
	}
	return types.ObjectValueMust(attrTypes, values)
}

// keepEquivalentNumbers is keepEquivalentState for Optional (not
// Computed) attributes: it only ever plans the prior state, and only when
// both it and the configuration are set, which is all Terraform allows
// there.
type keepEquivalentNumbers struct{}

var (
	_ planmodifier.Map    = keepEquivalentNumbers{}
	_ planmodifier.Number = keepEquivalentNumbers{}
)

func (keepEquivalentNumbers) Description(context.Context) string {
	return "Numbers with the same 64-bit float are not a change."
}

func (m keepEquivalentNumbers) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (keepEquivalentNumbers) PlanModifyMap(ctx context.Context, req planmodifier.MapRequest, resp *planmodifier.MapResponse) {
	if isKnown(req.ConfigValue) && isKnown(req.StateValue) && attrEquivalent(ctx, req.ConfigValue, req.StateValue) {
		resp.PlanValue = req.StateValue
	}
}

func (keepEquivalentNumbers) PlanModifyNumber(ctx context.Context, req planmodifier.NumberRequest, resp *planmodifier.NumberResponse) {
	if isKnown(req.ConfigValue) && isKnown(req.StateValue) && attrEquivalent(ctx, req.ConfigValue, req.StateValue) {
		resp.PlanValue = req.StateValue
	}
}

const replaceUnlessEquivalentDesc = "Changing it replaces the resource; null and empty, and numbers with the same 64-bit float, are not a change."

// requiresReplaceUnlessEquivalentMap replaces the resource when the planned
// value is not equivalent to the prior one.
func requiresReplaceUnlessEquivalentMap() planmodifier.Map {
	return mapplanmodifier.RequiresReplaceIf(func(ctx context.Context, req planmodifier.MapRequest, resp *mapplanmodifier.RequiresReplaceIfFuncResponse) {
		resp.RequiresReplace = !attrEquivalent(ctx, req.PlanValue, req.StateValue)
	}, replaceUnlessEquivalentDesc, replaceUnlessEquivalentDesc)
}

func requiresReplaceUnlessEquivalentObject() planmodifier.Object {
	return objectplanmodifier.RequiresReplaceIf(func(ctx context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
		resp.RequiresReplace = !attrEquivalent(ctx, req.PlanValue, req.StateValue)
	}, replaceUnlessEquivalentDesc, replaceUnlessEquivalentDesc)
}

// numbersNote is said in the description of every number attribute.
const numbersNote = "Any finite number, computed ones included (`tp / (tp + fn)`, `jsondecode(file(\"eval.json\")).auc`); the registry stores it as a 64-bit float, and a value with the same 64-bit float is no change."

// emptyNote is said in the description of every attribute planned with
// keepEquivalentState.
const emptyNote = "Leaving it out and writing it empty (`{}`) mean the same."

// numberValueLike is numberValue(f), or prior when it means the same
// float64.
func numberValueLike(f float64, prior types.Number) types.Number {
	if isKnown(prior) {
		if pf, ok := numberFloat64(prior.ValueBigFloat()); ok && pf == f {
			return prior
		}
	}
	return numberValue(f)
}

// planStateWhenUnchanged plans the prior state as it is when nothing the
// configuration sets changes. The framework marks every computed
// attribute "known after apply" as soon as the proposed plan differs from
// the state in any way, and a configuration equivalent to the state (1/3
// against the registry's 0.3333333333333333, {} against null) differs
// before the attribute plan modifiers settle it; without this, such a
// plan would show an update that changes nothing.
func planStateWhenUnchanged(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() || !resp.Plan.Raw.IsKnown() {
		return
	}
	var plan, state, config map[string]tftypes.Value
	if resp.Plan.Raw.As(&plan) != nil || req.State.Raw.As(&state) != nil || req.Config.Raw.As(&config) != nil {
		return
	}
	for name, p := range plan {
		if !p.IsKnown() && config[name].IsNull() {
			continue // computed only, marked unknown by the framework
		}
		if !p.Equal(state[name]) {
			return
		}
	}
	tflog.Debug(ctx, "no attribute changes: planning the prior state")
	resp.Plan.Raw = req.State.Raw.Copy()
}
