package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// registryUnderTest is a running registry with a write and an admin
// token, in this process or in a child.
type registryUnderTest struct {
	url, token, admin string

	stats func() (batches, writes int64, err error)
	// cpu is the CPU time the registry's process has used so far (with an
	// in-process registry, the whole process's).
	cpu          func() time.Duration
	startProfile func() error
	stopProfile  func(into *bytes.Buffer) error
	close        func() error
}

// hello is what a child registry prints once it serves.
type hello struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	Admin string `json:"admin"`
}

// boot starts app.Main on db and creates the tokens.
func boot(c config, db, prefix string) (*app.Main, hello, error) {
	m := app.New(app.Config{Listen: "127.0.0.1:0", DB: db, NoGroupCommit: c.noGroupCommit, Version: "bench"})
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		return nil, hello{}, err
	}
	token, _, err := app.CreateToken(ctx, m.Store(), registry.Actor{Name: "bench"}, "bench-"+prefix, registry.ScopeWrite, nil)
	if err != nil {
		_ = m.Close()
		return nil, hello{}, err
	}
	admin, _, err := app.CreateToken(ctx, m.Store(), registry.Actor{Name: "bench"}, "bench-admin-"+prefix, registry.ScopeAdmin, nil)
	if err != nil {
		_ = m.Close()
		return nil, hello{}, err
	}
	return m, hello{URL: m.URL(), Token: token, Admin: admin}, nil
}

func groupCommitStats(m *app.Main) (int64, int64) {
	if st, ok := m.Store().(interface{ GroupCommitStats() (int64, int64) }); ok {
		return st.GroupCommitStats()
	}
	return 0, 0
}

func startInProcess(c config, db, prefix string) (*registryUnderTest, error) {
	m, h, err := boot(c, db, prefix)
	if err != nil {
		return nil, err
	}
	var prof bytes.Buffer
	return &registryUnderTest{
		url: h.URL, token: h.Token, admin: h.Admin,
		stats: func() (int64, int64, error) {
			b, w := groupCommitStats(m)
			return b, w, nil
		},
		cpu:          selfCPU,
		startProfile: func() error { return pprof.StartCPUProfile(&prof) },
		stopProfile: func(into *bytes.Buffer) error {
			pprof.StopCPUProfile()
			_, err := into.Write(prof.Bytes())
			return err
		},
		close: m.Close,
	}, nil
}

// startChild runs the registry as "apiwrite serve" in a process of its
// own and talks to it over its stdin and stdout, one line each way.
func startChild(c config, db, prefix string) (*registryUnderTest, error) {
	args := []string{"serve", "-db", db, "-prefix", prefix}
	if c.noGroupCommit {
		args = append(args, "-no-group-commit")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	out := bufio.NewReader(outPipe)
	ask := func(q string) (string, error) {
		if _, err := fmt.Fprintln(in, q); err != nil {
			return "", err
		}
		line, err := out.ReadString('\n')
		return strings.TrimSpace(line), err
	}
	stop := func() error {
		_ = in.Close()
		return cmd.Wait()
	}
	line, err := out.ReadString('\n')
	var h hello
	if err == nil {
		err = json.Unmarshal([]byte(line), &h)
	}
	if err != nil {
		_ = stop()
		return nil, fmt.Errorf("child registry: %w", err)
	}
	dir, err := os.MkdirTemp("", "apiwrite-prof")
	if err != nil {
		_ = stop()
		return nil, err
	}
	return &registryUnderTest{
		url: h.URL, token: h.Token, admin: h.Admin,
		stats: func() (int64, int64, error) {
			a, err := ask("stats")
			if err != nil {
				return 0, 0, err
			}
			var b, w int64
			_, err = fmt.Sscan(a, &b, &w)
			return b, w, err
		},
		cpu: func() time.Duration { return procCPU(cmd.Process.Pid) },
		startProfile: func() error {
			_, err := ask("profile " + filepath.Join(dir, "cpu.pprof"))
			return err
		},
		stopProfile: func(into *bytes.Buffer) error {
			if _, err := ask("stop-profile"); err != nil {
				return err
			}
			b, err := os.ReadFile(filepath.Join(dir, "cpu.pprof"))
			into.Write(b)
			return err
		},
		close: func() error {
			defer func() { _ = os.RemoveAll(dir) }()
			return stop()
		},
	}, nil
}

// serveChild is "apiwrite serve": it boots the registry, prints its
// hello, answers commands on stdin (stats, profile PATH, stop-profile)
// and stops at stdin's end.
func serveChild(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	db := fs.String("db", "", "database DSN")
	prefix := fs.String("prefix", "", "token name suffix")
	noGC := fs.Bool("no-group-commit", false, "commit every SQLite write on its own")
	_ = fs.Parse(args)
	m, h, err := boot(config{noGroupCommit: *noGC}, *db, *prefix)
	if err != nil {
		log.Fatalf("apiwrite serve: %v", err)
	}
	defer func() { _ = m.Close() }()
	b, err := json.Marshal(h)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	var prof *os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "stats":
			b, w := groupCommitStats(m)
			fmt.Println(b, w)
		case "profile":
			if prof, err = os.Create(arg); err != nil {
				log.Fatal(err)
			}
			if err := pprof.StartCPUProfile(prof); err != nil {
				log.Fatal(err)
			}
			fmt.Println("ok")
		case "stop-profile":
			pprof.StopCPUProfile()
			if err := prof.Close(); err != nil {
				log.Fatal(err)
			}
			fmt.Println("ok")
		default:
			log.Fatalf("apiwrite serve: unknown command %q", cmd)
		}
	}
	if err := in.Err(); err != nil && !errors.Is(err, io.EOF) {
		log.Fatal(err)
	}
}

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user and system CPU time, from
// /proc/PID/stat (clock ticks of 1/100 s, Linux's USER_HZ); 0 when it
// cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}
