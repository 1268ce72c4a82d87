package provider

// Terraform drops a misspelt key inside an object assigned to a nested
// attribute without a word (`min_metric = ...` inside a stage policy
// validates and plans the real rule away), while it refuses an unknown
// argument inside a nested block. These tests hold every schema the
// provider serves to that: no user-settable nested attribute anywhere, and
// for every nested block of every resource, `terraform validate` fails on
// a misspelt key inside it and names the key.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

func providerSchemas(t *testing.T) *tfprotov6.GetProviderSchemaResponse {
	t.Helper()
	server, err := testAccProviders["mlregistry"]()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := server.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			t.Fatalf("GetProviderSchema: %s: %s", d.Summary, d.Detail)
		}
	}
	return resp
}

// settableNestedAttributes lists the paths of nested attributes a
// configuration may set (Optional or Required), anywhere in b.
func settableNestedAttributes(prefix string, b *tfprotov6.SchemaBlock) []string {
	var out []string
	for _, a := range b.Attributes {
		if a.NestedType != nil && (a.Optional || a.Required) {
			out = append(out, prefix+a.Name)
		}
	}
	for _, nb := range b.BlockTypes {
		out = append(out, settableNestedAttributes(prefix+nb.TypeName+".", nb.Block)...)
	}
	return out
}

// TestSchemasHaveNoSettableNestedAttributes: a nested object a user writes
// must be a block. A computed nested attribute (data sources) takes no
// input and may stay.
func TestSchemasHaveNoSettableNestedAttributes(t *testing.T) {
	s := providerSchemas(t)
	schemas := map[string]*tfprotov6.Schema{"provider": s.Provider}
	for name, sc := range s.ResourceSchemas {
		schemas["resource "+name] = sc
	}
	for name, sc := range s.DataSourceSchemas {
		schemas["data source "+name] = sc
	}
	for _, where := range slices.Sorted(func(yield func(string) bool) {
		for k := range schemas {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, p := range settableNestedAttributes("", schemas[where].Block) {
			t.Errorf("%s: %s is a nested attribute a configuration sets; Terraform drops misspelt keys inside it without an error. Declare it as a nested block.", where, p)
		}
	}
}

// blockPath is one nested block of a resource: the block type names from
// the resource down to it.
type blockPath []string

func (p blockPath) String() string { return strings.Join(p, ".") }

func nestedBlocks(prefix blockPath, b *tfprotov6.SchemaBlock) []blockPath {
	var out []blockPath
	for _, nb := range b.BlockTypes {
		p := append(slices.Clone(prefix), nb.TypeName)
		out = append(out, p)
		out = append(out, nestedBlocks(p, nb.Block)...)
	}
	return out
}

// strictValues are values that pass every validator of the attribute of
// that name; other attributes get a value by type.
var strictValues = map[string]string{
	"name": `"strict"`, "model": `"strict"`, "stage": `"production"`, "require_stage": `"staging"`,
	"min_soak": `"24h"`, "version": `1`, "upstream_url": `"http://strict.internal:8080"`, "weight": `100`,
	"max_error_rate": `0.1`, "min_requests": `10`, "window": `"5m"`, "timeout": `"30s"`,
	"sticky_header": `"X-User-Id"`, "source": `"s3://models/strict/model.onnx"`,
	"checksum": `"sha256:` + strings.Repeat("0", 64) + `"`, "format": `"onnx"`, "dtype": `"float32"`,
	"shape": `[-1, 4]`, "flagged": `true`, "flag_reason": `"strict"`,
	"steps": `[50, 100]`, "bake": `"5m"`, "max_latency_p99": `"500ms"`, "comparison": `"<"`,
	// Not a shadow: the strict route carries the whole weight.
	"shadow": `false`, "share": `null`,
}

func hclValue(name string, typ tftypes.Type) string {
	if v, ok := strictValues[name]; ok {
		return v
	}
	switch {
	case typ == nil: // a nested attribute, which the other test reports
		return "null"
	case typ.Is(tftypes.String):
		return `"strict"`
	case typ.Is(tftypes.Number):
		return `1`
	case typ.Is(tftypes.Bool):
		return `true`
	case typ.Is(tftypes.Map{ElementType: tftypes.Number}):
		return `{ auc = 0.5 }`
	case typ.Is(tftypes.Map{ElementType: tftypes.String}):
		return `{ team = "strict" }`
	case typ.Is(tftypes.List{ElementType: tftypes.String}):
		return `["strict"]`
	case typ.Is(tftypes.List{ElementType: tftypes.Number}):
		return `[1]`
	}
	return "null"
}

// blockBody writes every settable attribute of b and one of each nested
// block; typoAt is the path (below b) of the block that gets the
// misspelt key typo, nil for none.
func blockBody(sb *strings.Builder, indent string, b *tfprotov6.SchemaBlock, typoAt blockPath, typo string) {
	for _, a := range b.Attributes {
		if a.Optional || a.Required {
			fmt.Fprintf(sb, "%s%s = %s\n", indent, a.Name, hclValue(a.Name, a.Type))
		}
	}
	if len(typoAt) == 0 && typo != "" {
		fmt.Fprintf(sb, "%s%s = %s\n", indent, typo, `"typo"`)
	}
	for _, nb := range b.BlockTypes {
		fmt.Fprintf(sb, "%s%s {\n", indent, nb.TypeName)
		var below blockPath
		t := ""
		if len(typoAt) > 0 && typoAt[0] == nb.TypeName {
			below, t = typoAt[1:], typo
		}
		blockBody(sb, indent+"  ", nb.Block, below, t)
		fmt.Fprintf(sb, "%s}\n", indent)
	}
}

// misspelt is the key a hurried user writes instead of one the block
// has: an attribute without its last letter ("min_metric"), or for a
// block of blocks the plural of its first block ("inputs").
func misspelt(b *tfprotov6.SchemaBlock) string {
	names := make([]string, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		if a.Optional || a.Required {
			names = append(names, a.Name)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if typo := n[:len(n)-1]; !slices.Contains(names, typo) {
			return typo
		}
	}
	if len(b.BlockTypes) > 0 {
		return b.BlockTypes[0].TypeName + "s"
	}
	return "unknown_setting"
}

func blockAt(b *tfprotov6.SchemaBlock, p blockPath) *tfprotov6.SchemaBlock {
	for _, name := range p {
		for _, nb := range b.BlockTypes {
			if nb.TypeName == name {
				b = nb.Block
				break
			}
		}
	}
	return b
}

func resourceHCL(typ string, b *tfprotov6.SchemaBlock, typoAt blockPath, typo string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "resource %q \"strict\" {\n", typ)
	blockBody(&sb, "  ", b, typoAt, typo)
	sb.WriteString("}\n")
	return sb.String()
}

// TestAccTerraformCLI_typoInEveryNestedBlock runs `terraform validate`
// on each resource with one of each nested block: without a typo it
// passes (so the block is reachable and the values are valid), and with a
// misspelt key in any one block it fails naming that key.
func TestAccTerraformCLI_typoInEveryNestedBlock(t *testing.T) {
	t.Parallel()
	s := providerSchemas(t)
	// Validation only: no TRACE log to write.
	w := newWorkspace(t).withoutTrace()
	ctx := context.Background()
	cases := 0
	for _, typ := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.ResourceSchemas {
			if !yield(k) {
				return
			}
		}
	}) {
		root := s.ResourceSchemas[typ].Block
		w.writeConfig(requiredProvidersHCL + resourceHCL(typ, root, nil, ""))
		if out, err := w.run(ctx, "validate"); err != nil {
			t.Errorf("%s with one of each block should validate: %v\n%s", typ, err, out)
			continue
		}
		for _, p := range nestedBlocks(nil, root) {
			cases++
			typo := misspelt(blockAt(root, p))
			w.writeConfig(requiredProvidersHCL + resourceHCL(typ, root, p, typo))
			out, err := w.run(ctx, "validate")
			if err == nil {
				t.Errorf("%s: terraform validate accepted the misspelt key %q inside the %s block", typ, typo, p)
				continue
			}
			if !strings.Contains(out, "Unsupported argument") || !strings.Contains(out, fmt.Sprintf("An argument named %q is not expected here", typo)) {
				t.Errorf("%s: a misspelt %q inside the %s block should be an Unsupported argument error naming it, got:\n%s", typ, typo, p, out)
				continue
			}
			t.Logf("%s: %s { %s = ... } refused", typ, p, typo)
		}
	}
	// stage_policy, route, guard, lineage, signature and its input and
	// output blocks at least: a schema walk that finds nothing proves
	// nothing.
	if cases < 7 {
		t.Errorf("checked %d nested blocks, want at least 7", cases)
	}
}
