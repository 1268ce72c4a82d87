package ui_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
)

// xss is what a hostile user writes into every free-text field.
const xss = `<script>alert(1)</script>`

// api calls the registry API with a token and fails the test on an
// unexpected status.
func api(t testing.TB, reg *apptest.Registry, method, path, token string, body any, want int) []byte {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, reg.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, res.StatusCode, want, out)
	}
	return out
}

func checksum(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// seed creates, through the API, a model whose every free-text field is
// hostile, five versions (one flagged), staging and production with
// history, and an endpoint with a guard.
func seed(t testing.TB, reg *apptest.Registry) {
	t.Helper()
	admin := reg.AdminToken
	api(t, reg, "POST", "/api/v1/models", admin, map[string]any{
		"name": "churn", "description": xss, "owner": "ds-team",
		"tags": map[string]string{"team": `"><img src=x onerror=alert(2)>`},
		"stage_policies": map[string]any{
			"production": map[string]any{"require_stage": "staging", "min_metrics": map[string]float64{"auc": 0.8}},
		},
	}, http.StatusCreated)
	api(t, reg, "POST", "/api/v1/models", admin, map[string]any{"name": "fraud", "owner": "risk", "description": "card fraud"}, http.StatusCreated)
	aucs := []float64{0.81, 0.86, 0.84, 0.91, 0.88}
	for i, auc := range aucs {
		body := map[string]any{
			"source": fmt.Sprintf("s3://models/churn/%d/model.onnx", i+1), "checksum": checksum(fmt.Sprint("churn", i)),
			"format": "onnx", "metrics": map[string]float64{"auc": auc, "f1": 0.5 + float64(i)/20},
			"parameters":  map[string]string{"lr": "0.01", "note": xss},
			"lineage":     map[string]string{"run_id": fmt.Sprintf("run-%d", i+1), "git_commit": "3f2c1e0", "dataset": xss},
			"signature":   map[string]any{"inputs": []map[string]any{{"name": "x", "dtype": "float32", "shape": []int{-1, 8}}}, "outputs": []map[string]any{{"name": "p", "dtype": "float32", "shape": []int{-1}}}},
			"description": "version " + fmt.Sprint(i+1),
			"tags":        map[string]string{"xss": xss},
		}
		if i == 2 {
			body["flagged"], body["flag_reason"] = true, "label leak "+xss
		}
		api(t, reg, "POST", "/api/v1/models/churn/versions", admin, body, http.StatusCreated)
	}
	api(t, reg, "POST", "/api/v1/models/fraud/versions", admin, map[string]any{"source": "s3://m/f/1", "checksum": checksum("fraud1"), "format": "xgboost"}, http.StatusCreated)
	assign := func(stage string, v int, reason string) {
		api(t, reg, "PUT", "/api/v1/models/churn/stages/"+stage, admin, map[string]any{"version": v, "reason": reason}, http.StatusOK)
	}
	assign("staging", 2, "first candidate")
	assign("production", 2, "ship it "+xss)
	assign("staging", 4, "better auc")
	api(t, reg, "POST", "/api/v1/endpoints", admin, map[string]any{
		"name": "churn", "model": "churn",
		"routes": []map[string]any{
			{"name": "stable", "version": 2, "upstream_url": "http://127.0.0.1:9", "weight": 90},
			{"name": "canary", "version": 4, "upstream_url": "http://127.0.0.1:9", "weight": 10},
		},
		"guard": map[string]any{"max_error_rate": 0.05, "min_requests": 100, "window": "5m"},
	}, http.StatusCreated)
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see each answer.
func browser(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func get(t testing.TB, c *http.Client, u string) answer {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

func postForm(t testing.TB, c *http.Client, u string, form url.Values, origin string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

// login signs c in with token and fails the test unless it worked.
func login(t testing.TB, c *http.Client, base, token string) *http.Cookie {
	t.Helper()
	p := postForm(t, c, base+"/ui/login", url.Values{"token": {token}, "next": {"/ui/"}}, base)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
		t.Fatalf("login = %d (Location %q): %s", p.status, p.header.Get("Location"), p.body)
	}
	res := http.Response{Header: p.header}
	for _, ck := range res.Cookies() {
		if ck.Name == "mlregistry_session" {
			return ck
		}
	}
	t.Fatalf("login set no session cookie: %v", p.header["Set-Cookie"])
	return nil
}
