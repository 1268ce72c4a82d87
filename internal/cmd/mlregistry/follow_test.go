package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestEventsFollowPrintsEachEventOnceInOrder: with --limit, follow starts
// with the last events and then prints only what is written after them,
// each event once, ids ascending, while events keep being written.
func TestEventsFollowPrintsEachEventOnceInOrder(t *testing.T) {
	f := newFixture(t)
	all := decodeJSON[[]registry.Event](t, f.ok(t, "events", "--limit", "0", "-o", "json"))
	if len(all) < 5 {
		t.Fatalf("fixture wrote %d events, want several", len(all))
	}
	last := all[len(all)-2:]

	cmd := exec.Command(binary(t), "events", "--follow", "--limit", "2", "--interval", "50ms", "-o", "json")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, f.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan registry.Event, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e registry.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	var got []registry.Event
	next := func() registry.Event {
		t.Helper()
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("events --follow ended early: %s", stderr.String())
			}
			got = append(got, e)
			return e
		case <-time.After(15 * time.Second):
			t.Fatalf("no event within 15s after %v: %s", ids(got), stderr.String())
		}
		return registry.Event{}
	}
	for _, want := range last {
		if e := next(); e.ID != want.ID {
			t.Fatalf("follow started with event %d, want the last two (%v)", e.ID, ids(last))
		}
	}
	// Writes while following, several polls apart and within one poll.
	const writes = 6
	for i := 0; i < writes; i++ {
		if st, out := do(t, "PATCH", f.srv.url+"/api/v1/models/fraud", f.admin, map[string]any{"description": fmt.Sprint("write ", i)}); st != 200 {
			t.Fatalf("patch: %d %v", st, out)
		}
		if i%2 == 1 {
			e := next()
			if e.Action != registry.ActionModelUpdate {
				t.Fatalf("followed %+v, want a model.update; so far %v", e, ids(got))
			}
		}
	}
	for len(got) < len(last)+writes {
		next()
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("events --follow after an interrupt: %v\n%s", err, stderr.String())
	}
	for e := range lines {
		got = append(got, e)
	}
	if len(got) != len(last)+writes {
		t.Errorf("followed %d events %v, want %d: the last two, then each write once", len(got), ids(got), len(last)+writes)
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID <= got[i-1].ID {
			t.Errorf("event ids not strictly ascending: %v", ids(got))
			break
		}
	}
	for _, e := range got[len(last):] {
		if e.Action != registry.ActionModelUpdate || e.Actor != "admin" {
			t.Errorf("after the last two, followed %+v; want only the writes made while following", e)
		}
	}
}

func ids(evs []registry.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}
