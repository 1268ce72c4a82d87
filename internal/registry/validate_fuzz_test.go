package registry

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stringValidators are the validators of single values, each with an
// oracle written without the validator's regular expression where the
// rule is a pattern (nil: no oracle, only the error contract).
var stringValidators = []struct {
	name   string
	check  func(field, v string) error
	oracle func(v string) bool
}{
	{"name", ValidateName, func(v string) bool {
		return patternOK(v, 128, isLowerDigit, func(c byte) bool { return isLowerDigit(c) || c == '.' || c == '_' || c == '-' })
	}},
	{"stage", ValidateStage, func(v string) bool {
		return patternOK(v, 63, isLower, func(c byte) bool { return isLowerDigit(c) || c == '-' })
	}},
	{"checksum", ValidateChecksum, func(v string) bool {
		hex, ok := strings.CutPrefix(v, "sha256:")
		return ok && len(hex) == 64 && strings.Trim(hex, "0123456789abcdef") == ""
	}},
	{"format", ValidateFormat, nil},
	{"source", ValidateSource, nil},
	{"upstream_url", ValidateUpstreamURL, func(v string) bool {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return false
		}
		return true // the address rule is checked on accepted values below
	}},
	{"duration", func(f, v string) error { _, err := ValidateDuration(f, v); return err }, func(v string) bool {
		d, err := time.ParseDuration(v)
		return err == nil && d > 0
	}},
	{"sticky_header", ValidateStickyHeader, nil},
	{"timeout", ValidateEndpointTimeout, nil},
}

func isLower(c byte) bool      { return c >= 'a' && c <= 'z' }
func isLowerDigit(c byte) bool { return isLower(c) || c >= '0' && c <= '9' }

// patternOK: first byte passes first, the rest pass rest, 1..maxLen bytes.
func patternOK(v string, maxLen int, first, rest func(byte) bool) bool {
	if len(v) == 0 || len(v) > maxLen || !first(v[0]) {
		return false
	}
	for i := 1; i < len(v); i++ {
		if !rest(v[i]) {
			return false
		}
	}
	return true
}

// FuzzValidateString: every single-value validator answers nil or an
// invalid_argument *Error naming the field, never panics, and agrees with
// its oracle. Seeds in testdata/fuzz/FuzzValidateString.
func FuzzValidateString(f *testing.F) {
	for _, s := range []string{"churn", "a", "Churn", "-a", "a..b", strings.Repeat("a", 128), strings.Repeat("a", 129), "staging", "prod-1", "1prod",
		"sha256:" + strings.Repeat("0f", 32), "sha256:" + strings.Repeat("0F", 32), "onnx", "s3://bucket/key", "file:///m", "mailto:x", "http://a:1",
		"http://u:p@a", "http://[fe80::1]:80", "http://0.0.0.0", "https://h/p?q", "24h", "-1s", "0", "1h30m", "X-User", "30s", "", "\x00", "é"} {
		for i := range stringValidators {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, v string) {
		val := stringValidators[int(kind)%len(stringValidators)]
		err := val.check("f", v)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidArgument || e.Field != "f" || e.Rule == "" {
				t.Fatalf("%s(%q): error %#v is not an invalid_argument *Error naming the field and rule", val.name, v, err)
			}
		}
		if val.oracle != nil {
			want := val.oracle(v)
			if val.name == "upstream_url" && err != nil && want && (e(err).Rule == "upstream_address" || hostRefused(v)) {
				// The host's rules have their own oracle (FuzzParseUpstreamHost).
				want = false
			}
			if (err == nil) != want {
				t.Fatalf("%s(%q) = %v, the oracle says valid=%v", val.name, v, err, want)
			}
		}
		if again := val.check("f", v); (again == nil) != (err == nil) {
			t.Fatalf("%s(%q) is not deterministic", val.name, v)
		}
	})
}

// hostRefused: v's port is out of range, or its host is no valid host or
// an address in an unusual spelling.
func hostRefused(v string) bool {
	u, err := url.Parse(v)
	if err != nil {
		return false
	}
	if _, err := UpstreamPort(u); err != nil {
		return true
	}
	h, err := ParseUpstreamHost(u.Hostname())
	return err != nil || h.Unusual
}

func e(err error) *Error {
	var x *Error
	errors.As(err, &x)
	return x
}

// bodyTypes are the request bodies with a Validate method.
var bodyTypes = []func() interface{ Validate() error }{
	func() interface{ Validate() error } { return new(ModelCreate) },
	func() interface{ Validate() error } { return new(ModelPatch) },
	func() interface{ Validate() error } { return new(ModelVersionCreate) },
	func() interface{ Validate() error } { return new(ModelVersionPatch) },
	func() interface{ Validate() error } { return new(StageAssign) },
	func() interface{ Validate() error } { return new(EndpointCreate) },
	func() interface{ Validate() error } { return new(EndpointPatch) },
}

// FuzzValidateBody: each request body type's Validate, on whatever JSON
// decodes into it, answers nil or an invalid_argument *Error naming a
// field, never panics; an accepted value still validates after a JSON
// round trip (what the provider sends back is accepted again). Seeds in
// testdata/fuzz/FuzzValidateBody.
func FuzzValidateBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"churn","tags":{"a":"1"},"stage_policies":{"production":{"require_stage":"staging","min_soak":"24h","min_metrics":{"auc":0.9}}}}`,
		`{"stage_policies":{"production":{"min_soak":"-1h","max_metrics":{"loss":1e308}}}}`,
		`{"source":"s3://a/b","checksum":"sha256:0000000000000000000000000000000000000000000000000000000000000000","format":"onnx","metrics":{"auc":0.9},"signature":{"inputs":[{"name":"x","dtype":"float32","shape":[-1,2]}],"outputs":[]}}`,
		`{"flagged":false,"flag_reason":"x"}`, `{"add_metrics":{"auc":1}}`, `{"version":0}`, `{"version":3,"reason":"promote"}`,
		`{"name":"e","model":"m","routes":[{"name":"a","version":1,"upstream_url":"http://a","weight":60},{"name":"b","version":2,"upstream_url":"http://b","weight":40}],"guard":{"max_error_rate":0.05,"min_requests":100,"window":"5m"}}`,
		`{"routes":[{"name":"a","version":1,"upstream_url":"http://a","weight":101}],"sticky_header":"X-User"}`,
		`{"routes":[],"clear_guard":true}`, `{}`, `{"tags":{"":""}}`,
	} {
		for i := range bodyTypes {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		mk := bodyTypes[int(kind)%len(bodyTypes)]
		v := mk()
		if json.Unmarshal(body, v) != nil {
			return
		}
		err := v.Validate()
		if err != nil {
			var x *Error
			if !errors.As(err, &x) || x.Code != CodeInvalidArgument || x.Field == "" {
				t.Fatalf("%T.Validate() on %q: %#v is not an invalid_argument *Error naming a field", v, body, err)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			// Only non-finite numbers fail to encode, and JSON cannot
			// carry them in.
			t.Fatalf("accepted %T does not encode: %v", v, err)
		}
		w := mk()
		if err := json.Unmarshal(b, w); err != nil {
			t.Fatalf("accepted %T does not decode again: %v", v, err)
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("%T accepted %q but refuses its round trip %s: %v", v, body, b, err)
		}
	})
}
