package sqlstore

import (
	"reflect"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// columnSeeds are column values the fast decoders take and ones they
// must hand to encoding/json.
var columnSeeds = []string{
	`{}`, ` { } `, `null`, `{"a":"b","c":"d"}`, `{"a":"b","a":"c"}`, `{"k":"caf\u00e9"}`, `{"k":"café"}`,
	`{"k":"a\"b"}`, `{"k":"\u003chtml\u003e"}`, "{\"k\":\"\xff\"}", "{\"k\":\"a\tb\"}", `{"k":1}`, `{"k":"v",}`,
	`{"auc":0.91,"f1":1e-3,"n":-0,"big":1E+300,"i":42}`, `{"x":01}`, `{"x":1.}`, `{"x":.5}`, `{"x":-}`, `{"x":1e400}`,
	`{"x":1x}`, `{"x":NaN}`, `{"x":"1"}`, `{"x":1}trailing`, `{"x":1} `,
	`{"run_id":"r1","git_commit":"abc","dataset":"s3://d","code_uri":"https://c"}`, `{"RUN_ID":"r"}`, `{"run_id":"a","run_id":"b"}`,
	`{"other":"x"}`, `{"run_id":null}`,
	`{"inputs":[{"name":"features","dtype":"float32","shape":[-1,64]}],"outputs":[{"name":"score","dtype":"float32","shape":[]}]}`,
	`{"inputs":[],"outputs":[]}`, `{"inputs":null,"outputs":[]}`, `{"inputs":[{"name":"a","shape":null}]}`,
	`{"inputs":[{"name":"a","shape":[1.5]}]}`, `{"inputs":[{"name":"a","shape":[99999999999999999999]}]}`,
	`{"inputs":[{"name":"a","shape":[1e2]}]}`, `{"inputs":[{"name":"a","name":"b"}]}`, `{"inputs":[{"Name":"a"}]}`,
	`{"inputs":[{"name":"a"},{"dtype":"b"}],"inputs":[{"shape":[1]}]}`, `{"inputs":[{}]}`, `[1]`, `"s"`, ``, `{`,
}

// checkColumnDecoders compares each fast column decoder (through its
// encoding/json fallback) with plain encoding/json on s.
func checkColumnDecoders(t *testing.T, s string) {
	t.Helper()
	wantStrings, wantErr := stringMap(s)
	gotStrings, err := decodeStringMap(s)
	compare(t, "string map", s, gotStrings, err, wantStrings, wantErr)

	wantFloats := map[string]float64{}
	wantErr = fromJSON(s, &wantFloats)
	wantFloats = nonNilFloats(wantFloats)
	gotFloats, err := decodeFloatMap(s)
	if wantErr != nil {
		wantFloats = nil
	}
	compare(t, "float map", s, gotFloats, err, wantFloats, wantErr)

	wantLineage := &registry.Lineage{}
	wantErr = fromJSON(s, wantLineage)
	gotLineage, err := decodeLineage(s)
	compare(t, "lineage", s, gotLineage, err, wantLineage, wantErr)

	wantSig := &registry.Signature{}
	wantErr = fromJSON(s, wantSig)
	gotSig, err := decodeSignature(s)
	compare(t, "signature", s, gotSig, err, wantSig, wantErr)
}

func compare(t *testing.T, what, s string, got any, gotErr error, want any, wantErr error) {
	t.Helper()
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%s of %q: error %v, encoding/json's %v", what, s, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s of %q: %#v, encoding/json gives %#v", what, s, got, want)
	}
}

// TestColumnDecoders: the version columns' fast decoders give what
// encoding/json gives, values and errors, on the shapes the store writes
// and on the ones they leave to encoding/json.
func TestColumnDecoders(t *testing.T) {
	for _, s := range columnSeeds {
		checkColumnDecoders(t, s)
	}
	// The fast path does take the store's own shapes.
	for s, fast := range map[string]func(string) bool{
		`{"a":"b","c":"café"}`:                  func(s string) bool { _, ok := fastStringMap(s); return ok },
		`{"auc":0.91,"n":-1.5e-3}`:              func(s string) bool { _, ok := fastFloatMap(s); return ok },
		`{"run_id":"r","code_uri":"https://c"}`: func(s string) bool { _, ok := fastLineage(s); return ok },
		`{"inputs":[{"name":"f","dtype":"float32","shape":[-1,64]}],"outputs":[]}`: func(s string) bool { _, ok := fastSignature(s); return ok },
	} {
		if !fast(s) {
			t.Errorf("%s: not decoded by the fast path", s)
		}
	}
}

// FuzzColumnDecoders: on any input the fast column decoders agree with
// encoding/json.
func FuzzColumnDecoders(f *testing.F) {
	for _, s := range columnSeeds {
		f.Add(s)
	}
	f.Fuzz(checkColumnDecoders)
}
