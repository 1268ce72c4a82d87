package gateway

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/storetest"
)

// holdCommits makes every transaction that writes the endpoints table
// wait at COMMIT (in a deferred constraint trigger, after all its rows,
// event included, are written) until release is called. The waiting
// transaction's rows are not visible to anyone meanwhile.
func holdCommits(t *testing.T, dsn string) (waiting func() bool, release func()) {
	t.Helper()
	ctx := t.Context()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		`CREATE FUNCTION test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$`,
		`CREATE CONSTRAINT TRIGGER test_hold_commit AFTER INSERT OR UPDATE OR DELETE ON endpoints
		 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_hold_commit()`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(4242)"); err != nil {
		t.Fatal(err)
	}
	waiting = func() bool {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	release = func() {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock(4242)"); err != nil {
			t.Fatal(err)
		}
	}
	return waiting, release
}

// TestPostgresEndpointChangeCommittedAfterHigherEventID is the exact race
// of a poller keyed on MAX(events.id): on PostgreSQL an endpoint write
// takes event id N, an unrelated write takes N+1 and commits first, the
// gateway polls in between (and sees N+1), then the endpoint write
// commits. The first poll after that commit must route the change.
func TestPostgresEndpointChangeCommittedAfterHigherEventID(t *testing.T) {
	storetest.PostgresDSN(t) // skips early without PostgreSQL
	a, b := upstream(t, "a").URL, upstream(t, "b").URL
	initial := []registry.Route{rt("a", 1, a, 100), rt("b", 2, b, 0)}
	flipped := []registry.Route{rt("a", 1, a, 0), rt("b", 2, b, 100)}

	for _, tc := range []struct {
		name string
		// exists: the endpoint is there before the write.
		exists bool
		write  func(ctx context.Context, s *sqlstore.Store) error
		// want is the route the change sends traffic to ("" = 404).
		want string
	}{
		{"create", false, func(ctx context.Context, s *sqlstore.Store) error {
			_, err := s.CreateEndpoint(ctx, admin, registry.EndpointCreate{Name: "ep", Model: "m", Routes: flipped})
			return err
		}, "b"},
		{"update", true, func(ctx context.Context, s *sqlstore.Store) error {
			_, err := s.UpdateEndpoint(ctx, admin, "ep", registry.EndpointPatch{Routes: &flipped}, registry.Precondition{})
			return err
		}, "b"},
		{"guard rollback recorded by another replica", true, func(ctx context.Context, s *sqlstore.Store) error {
			_, err := s.RecordGuardRollback(ctx, registry.Actor{Name: GuardActor}, "ep", 1, flipped, "route a failing")
			return err
		}, "b"},
		{"delete", true, func(ctx context.Context, s *sqlstore.Store) error {
			return s.DeleteEndpoint(ctx, admin, "ep", registry.Precondition{})
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			dsn := storetest.PostgresDSN(t)
			s, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if _, err := s.CreateModel(ctx, admin, registry.ModelCreate{Name: "m"}); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if _, err := s.CreateVersion(ctx, admin, "m", registry.ModelVersionCreate{
					Source: fmt.Sprintf("file:///m/%d", i+1), Checksum: "sha256:" + strings.Repeat(fmt.Sprintf("%x", i+1), 64), Format: "onnx",
				}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.exists {
				if _, err := s.CreateEndpoint(ctx, admin, registry.EndpointCreate{Name: "ep", Model: "m", Routes: initial}); err != nil {
					t.Fatal(err)
				}
			}
			h := newHarness(t, s, nil) // no Run: the test polls by hand
			c := client(t)
			routed := func() string {
				t.Helper()
				res, _ := get(t, c, h.srv.URL+"/serve/ep/")
				if res.StatusCode == 404 {
					return ""
				}
				return res.Header.Get("X-Route")
			}
			before := routed()

			waiting, release := holdCommits(t, dsn)
			done := make(chan error, 1)
			go func() { done <- tc.write(ctx, s) }()
			deadline := time.Now().Add(10 * time.Second)
			for !waiting() {
				if time.Now().After(deadline) {
					t.Fatal("the endpoint write never reached its commit")
				}
				time.Sleep(5 * time.Millisecond) // polling the database, bounded by the deadline
			}
			if _, err := s.CreateModel(ctx, admin, registry.ModelCreate{Name: "unrelated"}); err != nil {
				t.Fatal(err)
			}
			if err := h.gw.poll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := routed(); got != before {
				t.Fatalf("before the endpoint write committed: routed to %q, want %q", got, before)
			}
			release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}

			// The race really happened: the endpoint's event has the lower id.
			page, err := s.ListEvents(ctx, registry.EventFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var endpointEvent, unrelatedEvent int64
			for _, e := range page.Items {
				switch {
				case e.Endpoint == "ep":
					endpointEvent = e.ID
				case e.Model == "unrelated":
					unrelatedEvent = e.ID
				}
			}
			if endpointEvent == 0 || endpointEvent >= unrelatedEvent {
				t.Fatalf("endpoint event id %d, unrelated event id %d: the race was not set up", endpointEvent, unrelatedEvent)
			}

			if err := h.gw.poll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := routed(); got != tc.want {
				t.Fatalf("first poll after the endpoint write committed: routed to %q, want %q", got, tc.want)
			}
		})
	}
}
