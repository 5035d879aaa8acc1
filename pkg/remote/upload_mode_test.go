package remote_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// slowLink forwards 127.0.0.1 connections to addr, holding every chunk the
// client sends for delay: each round trip of the upload then lasts long
// enough for a watcher to see every state the file goes through.
func slowLink(t *testing.T, addr string, delay time.Duration) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			go func() { // server → client as it comes
				_, _ = io.Copy(in, out)
				in.Close()
			}()
			go func() { // client → server, late
				defer out.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := in.Read(buf)
					if n > 0 {
						time.Sleep(delay)
						if _, werr := out.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return host, p
}

// TestUploadNeverReadable is issue 23's sixth defect: over SFTP the new
// keepalived.conf was created with the server's default mode and chmod-ed
// in a second round trip, so anyone could open it in between and read the
// secret through that descriptor later. A watcher polls the file all
// through a slowed-down upload: it must never exist with group or other
// permissions, and ends 0600 with the content.
func TestUploadNeverReadable(t *testing.T) {
	s := remotetest.NewServer(t)
	cfg := s.Config()
	cfg.Address, cfg.Port = slowLink(t, s.Addr, 20*time.Millisecond)
	// The server's key is on record for its own port, not the link's.
	cfg.KnownHostsFile, cfg.AcceptNewHostKeys = filepath.Join(t.TempDir(), "known_hosts"), true
	c, err := remote.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, stale := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), ".keepalived.conf.hactl-new")
		if stale { // a candidate left world-readable by an earlier run
			if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var seen atomic.Uint32 // a mode with group/other bits, seen while uploading
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A stale file counts once truncated: the new content
				// would go into a file others may hold open.
				if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 && (!stale || st.Size() == 0) {
					seen.Store(uint32(st.Mode().Perm()) | 1<<31)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
		err := c.Upload(context.Background(), p, []byte("auth_pass s3cret\n"), 0o600)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if m := seen.Load(); m != 0 {
			t.Errorf("stale=%v: the file existed with mode %04o during the upload", stale, m&0o777)
		}
		st, err := os.Stat(p)
		if got, _ := os.ReadFile(p); err != nil || st.Mode().Perm() != 0o600 || string(got) != "auth_pass s3cret\n" {
			t.Errorf("stale=%v: after the upload: %v %q %v", stale, st.Mode(), got, err)
		}
	}
}
