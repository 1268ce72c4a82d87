package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// TestBackupUnderWriteLoadRestores backs a SQLite registry up while
// writers keep creating versions, restores the backup into a new server,
// and checks the new server answers the same reads as the old one did for
// everything the backup holds: a consistent snapshot, not a torn copy.
func TestBackupUnderWriteLoadRestores(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "live.db")
	r := apptest.Start(t, apptest.WithDB(dsn))
	c := newClientFor(t, r)
	ctx := context.Background()
	if _, err := c.CreateModel(ctx, registry.ModelCreate{Name: "churn", StagePolicies: map[string]registry.StagePolicy{
		"production": {MinMetrics: map[string]float64{"auc": 0.5}},
	}}); err != nil {
		t.Fatal(err)
	}

	var n, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := n.Add(1)
				sum := sha256.Sum256(fmt.Appendf(nil, "b%d", i))
				v, err := c.CreateVersion(ctx, "churn", registry.ModelVersionCreate{
					Source: "s3://b/m.onnx", Checksum: "sha256:" + hex.EncodeToString(sum[:]), Format: "onnx",
					Metrics: map[string]float64{"auc": 0.9},
				})
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				if _, err := c.AssignStage(ctx, "churn", "production", registry.StageAssign{Version: v.Version}, 0); err != nil {
					t.Errorf("assign: %v", err)
					return
				}
				done.Add(1)
			}
		}()
	}
	waitUntil(t, func() bool { return done.Load() >= 50 || t.Failed() })
	out := filepath.Join(dir, "backup.db")
	backupErr := sqlstore.Backup(ctx, dsn, out)
	waitUntil(t, func() bool { return done.Load() >= 100 || t.Failed() })
	close(stop)
	wg.Wait()
	if backupErr != nil {
		t.Fatal(backupErr)
	}
	if err := sqlstore.Backup(ctx, dsn, out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second backup over the first: %v", err)
	}

	restored := "sqlite://" + filepath.Join(dir, "restored.db")
	if err := sqlstore.Restore(ctx, out, restored, false); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Restore(ctx, out, restored, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("restore over an existing database without force: %v", err)
	}
	r2 := apptest.Start(t, apptest.WithDB(restored))
	c2 := newClientFor(t, r2)

	// The snapshot is consistent: production names a version the backup
	// holds, its history matches, and every version in it reads the same
	// from the live registry.
	prod, err := c2.GetStage(ctx, "churn", "production")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := c2.ListVersions(ctx, "churn", registry.VersionFilter{ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Items) < 50 {
		t.Fatalf("the backup holds %d versions, want at least the 50 made before it", len(vs.Items))
	}
	last := vs.Items[len(vs.Items)-1]
	if prod.Version > last.Version {
		t.Errorf("production names v%d, beyond the backup's last version v%d", prod.Version, last.Version)
	}
	for _, v := range vs.Items {
		live, err := c.GetVersion(ctx, "churn", v.Version)
		if err != nil {
			t.Fatal(err)
		}
		if live.Checksum != v.Checksum || !live.CreatedAt.Equal(v.CreatedAt) {
			t.Errorf("version %d: restored %s, live %s", v.Version, v.Checksum, live.Checksum)
		}
	}
	hist, err := c2.StageHistory(ctx, "churn", "production", registry.ListOptions{PageSize: 1})
	if err != nil || len(hist.Items) != 1 || hist.Items[0].Version != prod.Version {
		t.Errorf("restored history head %+v (%v), production v%d", hist, err, prod.Version)
	}
	// The restored registry takes writes, numbering after what it holds.
	nv, err := c2.CreateVersion(ctx, "churn", registry.ModelVersionCreate{Source: "s3://b/m.onnx", Checksum: "sha256:" + strings.Repeat("ab", 32), Format: "onnx"})
	if err != nil || nv.Version <= last.Version {
		t.Errorf("write after restore: %+v, %v", nv, err)
	}

	// PostgreSQL is pg_dump's job, said plainly.
	err = sqlstore.Backup(ctx, "postgres://u@127.0.0.1:1/db", filepath.Join(dir, "pg.db"))
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("postgres backup: %v", err)
	}
	// A file that is not a registry is refused.
	if err := sqlstore.Restore(ctx, filepath.Join(dir, "nope.db"), "sqlite://"+filepath.Join(dir, "x.db"), false); err == nil {
		t.Error("restoring a missing file succeeded")
	}
}

func newClientFor(t *testing.T, r *apptest.Registry) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Address: r.URL, Token: r.AdminToken, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitUntil polls cond every few milliseconds for up to 30 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
