package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// etagMember: p is one well-formed If-Match member, an RFC 9110
// entity-tag: [W/] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / %x80-FF
// (bytes: a regular expression would match runes).
func etagMember(p string) bool {
	p = strings.TrimPrefix(p, "W/")
	if len(p) < 2 || p[0] != '"' || p[len(p)-1] != '"' {
		return false
	}
	for _, c := range []byte(p[1 : len(p)-1]) {
		if c != 0x21 && (c < 0x23 || c == 0x7f) {
			return false
		}
	}
	return true
}

// FuzzIfMatch: parseIfMatch, on any header (lines separated by \n become
// several If-Match fields), never panics; it refuses exactly the headers
// with a malformed member (or none), answering invalid_argument for
// If-Match; it accepts * alone; and the revisions it reads are exactly the
// strong tags holding a canonical positive decimal. Seeds in
// testdata/fuzz/FuzzIfMatch.
func FuzzIfMatch(f *testing.F) {
	for _, s := range []string{`"1"`, `*`, `"1", "2"`, `W/"3"`, `3`, `"01"`, `"abc"`, `"1",,"2"`, `,`, `"1"` + "\n" + `"2"`, `*, "1"`, `"9223372036854775808"`,
		`"-1"`, `"0"`, "\"\x7f\"", `""`, ` "4" `, "\t\"5\"\t", `W/"1", "2"`, `"1"x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("PATCH", "/", nil)
		lines := strings.Split(header, "\n")
		for _, l := range lines {
			r.Header.Add("If-Match", l)
		}
		m, err := parseIfMatch(r)

		var members []string
		for _, l := range lines {
			for p := range strings.SplitSeq(l, ",") {
				if p = strings.Trim(p, " \t"); p != "" {
					members = append(members, p)
				}
			}
		}
		star := len(members) == 1 && members[0] == "*"
		valid := len(members) > 0
		var want []int64
		for _, p := range members {
			if star {
				break
			}
			if !etagMember(p) {
				valid = false
				break
			}
			if inner, strong := strings.CutPrefix(p, `"`); strong {
				inner = strings.TrimSuffix(inner, `"`)
				if n, err := strconv.ParseInt(inner, 10, 64); err == nil && n > 0 && strconv.FormatInt(n, 10) == inner {
					want = append(want, n)
				}
			}
		}
		if !valid {
			var e *registry.Error
			if !errors.As(err, &e) || e.Code != registry.CodeInvalidArgument || e.Field != "If-Match" {
				t.Fatalf("%q: got %+v, %v; want invalid_argument for If-Match", header, m, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q is well-formed, refused: %v", header, err)
		}
		if !m.present || m.star != star {
			t.Fatalf("%q: present %v star %v, want star %v", header, m.present, m.star, star)
		}
		if !star && !equalInts(m.revisions, want) {
			t.Fatalf("%q: revisions %v, want %v", header, m.revisions, want)
		}
	})
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fuzzRoutes are the write routes whose bodies the server decodes; model
// "churn" with versions 1 and 2 exists.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/models"},
	{"PATCH", "/api/v1/models/churn"},
	{"POST", "/api/v1/models/churn/versions"},
	{"PATCH", "/api/v1/models/churn/versions/1"},
	{"PUT", "/api/v1/models/churn/stages/staging"},
	{"PUT", "/api/v1/models/churn/stages/staging?dry_run=true"},
	{"POST", "/api/v1/endpoints"},
	{"POST", "/api/v1/endpoints?dry_run=true"},
	{"PATCH", "/api/v1/endpoints/api"},
	{"PATCH", "/api/v1/endpoints/api?dry_run=true"},
}

// FuzzWriteBody sends any body to every write route of a real server (on
// SQLite): the answer is never a 5xx, an error is problem+json whose
// code matches its status, and a success is JSON. This covers each
// request decoder, the validators and the store behind them together.
// Seeds in testdata/fuzz/FuzzWriteBody.
func FuzzWriteBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"fraud","tags":{"a":"1"},"stage_policies":{"production":{"require_stage":"staging","min_soak":"24h","min_metrics":{"auc":0.9}}}}`,
		`{"description":"x","owner":"me","tags":{}}`,
		`{"source":"s3://a/b","checksum":"sha256:00000000000000000000000000000000000000000000000000000000000000ff","format":"onnx","metrics":{"auc":0.9}}`,
		`{"description":"d","flagged":true,"flag_reason":"bad"}`, `{"add_metrics":{"f1":0.5}}`,
		`{"version":2,"reason":"promote"}`, `{"version":99}`,
		`{"name":"api2","model":"churn","routes":[{"name":"a","version":1,"upstream_url":"http://a:1","weight":100}]}`,
		`{"routes":[{"name":"a","version":1,"upstream_url":"http://a:1","weight":50},{"name":"b","version":2,"upstream_url":"http://b:1","weight":50}]}`,
		`{"guard":{"max_error_rate":0.5,"min_requests":10,"window":"1m"},"sticky_header":"X-User"}`,
		`{"name":`, `[]`, `null`, `{"name":"a","name":"b"}`, `{"NAME":"a"}`, `{"version":1e400}`, "\xff",
	} {
		for i := range fuzzRoutes {
			f.Add(uint8(i), []byte(s))
		}
	}
	url, admin := fuzzServer(f)
	seed := func(method, path, body string) {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode >= 300 {
			f.Fatalf("seed %s %s: %v %v", method, path, res, err)
		}
		res.Body.Close()
	}
	seed("POST", "/api/v1/models", `{"name":"churn"}`)
	seed("POST", "/api/v1/models/churn/versions", `{"source":"s3://m/1","checksum":"sha256:`+strings.Repeat("01", 32)+`","format":"onnx"}`)
	seed("POST", "/api/v1/models/churn/versions", `{"source":"s3://m/2","checksum":"sha256:`+strings.Repeat("02", 32)+`","format":"onnx"}`)
	seed("POST", "/api/v1/endpoints", `{"name":"api","model":"churn","routes":[{"name":"a","version":1,"upstream_url":"http://a:1","weight":100}]}`)

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req, err := http.NewRequest(rt.method, url+rt.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		dec := json.NewDecoder(res.Body)
		decErr := dec.Decode(&out)
		mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
		switch {
		case res.StatusCode >= 500:
			t.Fatalf("%s %s %q: %d %v", rt.method, rt.path, body, res.StatusCode, out)
		case res.StatusCode >= 400:
			code, _ := out["code"].(string)
			if mt != "application/problem+json" || decErr != nil || registry.HTTPStatus(registry.Code(code)) != res.StatusCode {
				t.Fatalf("%s %s %q: %d %s %v is not a problem with a matching code", rt.method, rt.path, body, res.StatusCode, mt, out)
			}
		default:
			if mt != "application/json" || decErr != nil {
				t.Fatalf("%s %s %q: %d %s is not JSON: %v", rt.method, rt.path, body, res.StatusCode, mt, decErr)
			}
		}
	})
}

// fuzzServer boots a real server over SQLite for a whole fuzz run (newEnv
// is per test) and returns its URL and an admin token.
func fuzzServer(f *testing.F) (url, admin string) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(f.TempDir(), "fuzz.db"), sqlstore.Options{})
	if err != nil {
		f.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	url = "http://" + ts.Listener.Addr().String()
	srv, err := New(Options{Store: st, PublicURL: url})
	if err != nil {
		f.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	f.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
		_ = st.Close()
	})
	secret, hash, err := registry.NewTokenSecret()
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, registry.Actor{Name: "fuzz"}, registry.Token{Name: "admin", Scope: registry.ScopeAdmin, Hash: hash}); err != nil {
		f.Fatal(err)
	}
	return url, secret
}
