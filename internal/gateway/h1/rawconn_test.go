package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// fastPair returns a connection accepted through Listener and the client
// end dialled to it.
func fastPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := Listener(l)
	t.Cleanup(func() { fl.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := fl.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestFastConnReadWrite(t *testing.T) {
	server, client := fastPair(t)
	if _, ok := server.(*fastConn); !ok && rawIO {
		t.Fatalf("Listener accepted a %T", server)
	}
	// A large write in both directions at once: partial writes and the
	// poller's waits for a drained socket buffer.
	const size = 8 << 20
	want := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var wg sync.WaitGroup
	var got bytes.Buffer
	wg.Go(func() {
		if _, err := server.Write(want); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() {
		if _, err := io.CopyN(&got, client, size); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() {
		if _, err := client.Write(want); err != nil {
			t.Error(err)
		}
	})
	var back bytes.Buffer
	if _, err := io.CopyN(&back, server, size); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(got.Bytes(), want) || !bytes.Equal(back.Bytes(), want) {
		t.Fatal("data corrupted")
	}

	// EOF is io.EOF itself, as from any net.Conn.
	client.Close()
	if n, err := server.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after peer close: %d, %v", n, err)
	}
}

func TestFastConnDeadlineAndClose(t *testing.T) {
	server, _ := fastPair(t)
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := server.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout net.Error", err)
	}
	// A deadline in the past aborts a pending read (net/http relies on it).
	server.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 10))
		done <- err
	}()
	server.SetReadDeadline(aLongTimeAgo)
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("aborted read: %v", err)
	}
	server.Close()
	if _, err := server.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
