package server

import (
	"net/http"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestIfMatch: RFC 9110 If-Match. A well-formed tag that is not the
// current one is 412, a weak tag never matches (strong comparison), a list
// matches when any strong tag does, and only a malformed header is 400.
func TestIfMatch(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	m := e.createModel(registry.ModelCreate{Name: "churn"})
	v := e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1")})
	st := into[registry.StageAssignment](t, e.assign("churn", "staging", 1, e.writer, http.StatusOK))

	for _, target := range []struct {
		name     string
		method   string
		path     string
		body     any
		revision func() int64
	}{
		{"model", "PATCH", "/api/v1/models/churn", map[string]any{"owner": "x"}, func() int64 { return m.Revision }},
		{"version", "PATCH", "/api/v1/models/churn/versions/1", map[string]any{"description": "x"}, func() int64 { return v.Revision }},
		{"stage", "PUT", "/api/v1/models/churn/stages/staging", registry.StageAssign{Version: 1}, func() int64 { return st.Revision }},
	} {
		func() {
			call := func(ifMatch string, want int) *resp {
				t.Helper()
				t.Logf("%s %s", target.name, ifMatch)
				return e.do(req{method: target.method, path: target.path, token: e.writer, body: target.body,
					header: map[string]string{"If-Match": ifMatch}}, want)
			}
			rev := func() string { return itoa(target.revision()) }
			for _, tag := range []string{
				`"abc"`,                    // well-formed, not ours
				`""`,                       // the empty opaque tag is well-formed too
				`"999"`,                    // ours, not current
				`"0` + rev() + `"`,         // a different tag, though it reads as the same number
				`W/"` + rev() + `"`,        // weak: never matches
				`W/"abc", "998"`,           // a list of which nothing matches
				"\"7\",\t\"8\", , W/\"9\"", // list syntax allows empty elements and tabs
			} {
				p := problem(t, call(tag, http.StatusPreconditionFailed), registry.CodePreconditionFailed)
				if p.Field != "" {
					t.Errorf("If-Match %s: 412 names field %q", tag, p.Field)
				}
			}
			for _, tag := range []string{
				"yesterday",
				rev(),                // an entity-tag is quoted
				`"` + rev(),          // unterminated
				`"a"b"`,              // DQUOTE inside
				`*, "` + rev() + `"`, // * stands alone
				`,`,                  // a list of nothing
				`w/"` + rev() + `"`,  // the weak indicator is case-sensitive
				`"a b"`,              // space is not an etagc
			} {
				p := problem(t, call(tag, http.StatusBadRequest), registry.CodeInvalidArgument)
				if p.Field != "If-Match" || p.Rule != "etag" {
					t.Errorf("If-Match %s: %+v", tag, p)
				}
			}
			// Matching forms: the current tag, alone, in a list, and *.
			for _, tag := range []func() string{
				func() string { return `"` + rev() + `"` },
				func() string { return `W/"1", "999", "` + rev() + `"` },
				func() string { return "*" },
			} {
				res := call(tag(), http.StatusOK)
				switch target.name {
				case "model":
					m = into[registry.Model](t, res)
				case "version":
					v = into[registry.ModelVersion](t, res)
				case "stage":
					st = into[registry.StageAssignment](t, res)
				}
			}
		}()
	}
}
