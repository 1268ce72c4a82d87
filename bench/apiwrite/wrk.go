package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// wrkScript posts versions like the Go writers do (source, checksum,
// format, 2 metrics, 1 tag), connection c to model c mod models, each
// with a checksum no other request of the run has.
const wrkScript = `local models, token, run = %d, %q, %q
local counter = 0
local n = 0
function setup(thread)
	n = n + 1
	thread:set("id", n)
end
function request()
	counter = counter + 1
	local m = (counter + id) %% models
	local body = string.format('{"source":"s3://models/%%s/%%d/%%d/model.onnx","checksum":"sha256:%%s%%08x%%08x","format":"onnx","metrics":{"auc":0.9,"f1":0.8},"tags":{"team":"bench"}}',
		m, id, counter, run, id, counter)
	return wrk.format("POST", "/api/v1/models/" .. string.format("%%s-m%%d", %q, m) .. "/versions",
		{["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
`

// runWrk measures the same creates with wrk (-t2, one connection per
// writer) against a registry in its own process: the cross-check of the
// Go load generator's figure.
func runWrk(c config, db, prefix string, writers int, warmup, d time.Duration) (rate float64, non2xx int, err error) {
	reg, err := startChild(c, db, prefix)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = reg.close() }()
	for w := 0; w < writers; w++ {
		b, _ := json.Marshal(registry.ModelCreate{Name: fmt.Sprintf("%s-m%d", prefix, w)})
		req, err := http.NewRequest(http.MethodPost, reg.url+"/api/v1/models", bytes.NewReader(b))
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+reg.admin)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			return 0, 0, fmt.Errorf("create model: status %d", res.StatusCode)
		}
	}
	dir, err := os.MkdirTemp("", "apiwrite-wrk")
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	measure := func(run string, dur time.Duration) ([]byte, error) {
		// The run tag keeps checksums of the warm-up and the measurement
		// apart: 48 hex digits.
		script := filepath.Join(dir, run+".lua")
		tag := fmt.Sprintf("%048x", time.Now().UnixNano())
		if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, writers, reg.token, tag, prefix), 0o600); err != nil {
			return nil, err
		}
		return exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", writers), fmt.Sprintf("-d%s", dur), "-s", script, reg.url).Output()
	}
	if _, err := measure("warmup", max(warmup, time.Second)); err != nil {
		return 0, 0, fmt.Errorf("wrk: %w", err)
	}
	out, err := measure("run", d)
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %w", err)
	}
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("wrk printed no rate:\n%s", out)
	}
	rate, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := regexp.MustCompile(`Non-2xx or 3xx responses:\s+([0-9]+)`).FindSubmatch(out); m != nil {
		non2xx, _ = strconv.Atoi(string(m[1]))
	}
	return rate, non2xx, nil
}
