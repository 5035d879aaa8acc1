package failover

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTCPHolderSurvives: against a site that keeps its connections, the
// upload delivers every byte and the keep-alive client sends all its
// requests on one connection.
func TestTCPHolderSurvives(t *testing.T) {
	var conns, bytes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		bytes.Add(n)
		w.Header().Set(NodeHeader, "lab1")
		fmt.Fprintln(w, "lab1")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	ls := TCPHolder{}.Hold(context.Background(), srv.URL+HealthPath, 600*time.Millisecond)
	if len(ls) != 2 {
		t.Fatalf("%+v", ls)
	}
	up, ka := ls[0], ls[1]
	if up.Kind != KindUpload || !up.Survived || up.Bytes != UploadBytes || up.ExpectedBytes != UploadBytes || up.Error != "" {
		t.Errorf("upload %+v", up)
	}
	if ka.Kind != KindKeepAlive || !ka.Survived || ka.Requests < 5 || ka.Failed != 0 {
		t.Errorf("keep-alive %+v", ka)
	}
	if bytes.Load() != UploadBytes || conns.Load() != 2 {
		t.Errorf("server got %d bytes on %d connections, want %d on 2", bytes.Load(), conns.Load(), UploadBytes)
	}
}

// TestTCPHolderCut: a site that drops each connection part-way (as a new
// VIP holder resets connections it has no socket for) is reported cut,
// with the bytes and requests that went through.
func TestTCPHolderCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				if req.Method == http.MethodPost {
					// Take 100 kB of the body, then go away.
					_, _ = io.CopyN(io.Discard, req.Body, 100_000)
					return
				}
				// Answer three GETs, then go away.
				for i := 0; i < 3; i++ {
					if i > 0 {
						if _, err := http.ReadRequest(r); err != nil {
							return
						}
					}
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlab1\n")
				}
			}(c)
		}
	}()
	u := "http://" + ln.Addr().String() + HealthPath
	ls := TCPHolder{Timeout: 500 * time.Millisecond}.Hold(context.Background(), u, time.Second)
	up, ka := ls[0], ls[1]
	if up.Survived || up.Bytes >= UploadBytes || up.Error == "" {
		t.Errorf("upload %+v", up)
	}
	if ka.Survived || ka.Requests != 4 || ka.Failed != 1 || !strings.HasPrefix(ka.Error, "request 4:") {
		t.Errorf("keep-alive %+v", ka)
	}
	if s := up.String(); !strings.Contains(s, "upload "+u+": ") || !strings.Contains(s, "of 900000 bytes, connection cut (") {
		t.Errorf("%q", s)
	}
}
