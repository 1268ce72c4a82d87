package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitingStore holds GetModel until the request's context ends, then asks
// the real store with that context, as a slow query would.
type waitingStore struct {
	Store
	entered chan struct{}
}

func (s *waitingStore) GetModel(ctx context.Context, name string) (*registry.Model, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return s.Store.GetModel(ctx, name)
}

// TestClientGoneIsNotAnOutage: a client that hangs up while its request
// waits on the database is logged as "client went away" (status 499, at
// info), never as "database unavailable" or a 503 warning.
func TestClientGoneIsNotAnOutage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		var logs logBuffer
		ws := &waitingStore{entered: make(chan struct{}, 1)}
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e := newEnv(t, dsn, func(o *Options) {
			o.Store = ws
			o.Logger = log
		})
		// The store logs through the same logger, as in the app.
		logged, err := sqlstore.Open(t.Context(), dsn, sqlstore.Options{Logger: log, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = logged.Close() })
		ws.Store = logged
		e.createModel(registry.ModelCreate{Name: "churn"})

		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-ws.entered
			cancel()
		}()
		hr, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/api/v1/models/churn", nil)
		hr.Header.Set("Authorization", "Bearer "+e.reader)
		if res, err := http.DefaultClient.Do(hr); err == nil {
			res.Body.Close()
			t.Fatalf("the request was answered: %d", res.StatusCode)
		} else if !errors.Is(err, context.Canceled) {
			t.Fatalf("client: %v", err)
		}

		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), "client went away") {
			if time.Now().After(deadline) {
				t.Fatalf("no client-went-away line:\n%s", logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		out := logs.String()
		var line string
		for l := range strings.Lines(out) {
			if strings.Contains(l, "client went away") {
				line = l
			}
		}
		if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "status=499") || !strings.Contains(line, "route=/api/v1/models/{model}") {
			t.Errorf("client cancel line: %s", line)
		}
		for _, bad := range []string{"database unavailable", "level=WARN", "level=ERROR", "status=503"} {
			if strings.Contains(out, bad) {
				t.Errorf("log has %q for a client that went away:\n%s", bad, out)
			}
		}
	})
}
