package failover

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The kinds of long-lived connection a drain scenario holds open.
const (
	// KindUpload is one POST whose body is sent slowly, then a GET on the
	// same connection: a long transfer that must not be cut. The hactl
	// site has no large body to download (it answers short texts), so the
	// client is the side that sends; a reset cuts it the same way.
	KindUpload = "upload"
	// KindKeepAlive is a GET every KeepAliveEvery on one connection.
	KindKeepAlive = "keepalive"
)

// UploadBytes stays under nginx's default client_max_body_size (1 MiB), so
// the site reads and discards the body instead of refusing it.
const UploadBytes = 900_000

// KeepAliveEvery is the keep-alive client's request period (issue 22's).
const KeepAliveEvery = 100 * time.Millisecond

// LongLived is one long-lived connection through a scenario.
type LongLived struct {
	// Phase is "drain" (opened before the drain, held through the VIP's
	// move) or "undrain" (the same through the fail-back).
	Phase string `json:"phase"`
	Kind  string `json:"kind"`
	URL   string `json:"url"`
	// Upload: bytes the connection accepted of ExpectedBytes.
	Bytes         int64 `json:"bytes,omitempty"`
	ExpectedBytes int64 `json:"expected_bytes,omitempty"`
	// Keep-alive: requests sent and how many got no 200.
	Requests int `json:"requests,omitempty"`
	Failed   int `json:"failed,omitempty"`
	// Survived: the connection carried everything to the end.
	Survived bool   `json:"survived"`
	Error    string `json:"error,omitempty"`
}

func (l LongLived) String() string {
	switch l.Kind {
	case KindUpload:
		s := fmt.Sprintf("%s: %s %s: %d of %d bytes", l.Phase, l.Kind, l.URL, l.Bytes, l.ExpectedBytes)
		return s + survivedText(l)
	default:
		s := fmt.Sprintf("%s: %s %s: %d requests, %d failed", l.Phase, l.Kind, l.URL, l.Requests, l.Failed)
		return s + survivedText(l)
	}
}

func survivedText(l LongLived) string {
	if l.Survived {
		return ", connection survived"
	}
	return ", connection cut (" + l.Error + ")"
}

// Holder keeps long-lived connections open to a site for about dur and
// reports each. It returns when all have ended.
type Holder interface {
	Hold(ctx context.Context, url string, dur time.Duration) []LongLived
}

// TCPHolder holds an upload and a keep-alive client over plain TCP from
// the control machine (no proxy: the VIP itself is measured).
type TCPHolder struct {
	// Timeout bounds each read and write: a connection whose packets go
	// nowhere is cut, not waited for.
	Timeout time.Duration
}

// Hold runs both clients at once.
func (h TCPHolder) Hold(ctx context.Context, u string, dur time.Duration) []LongLived {
	out := make([]LongLived, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); out[0] = h.upload(ctx, u, dur) }()
	go func() { defer wg.Done(); out[1] = h.keepAlive(ctx, u, dur) }()
	wg.Wait()
	return out
}

func (h TCPHolder) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return 2 * time.Second
}

// conn dials the URL's host; path is its path.
func (h TCPHolder) conn(ctx context.Context, u string) (net.Conn, *bufio.Reader, string, string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("%s: %w", u, err)
	}
	d := net.Dialer{Timeout: h.timeout()}
	c, err := d.DialContext(ctx, "tcp", p.Host)
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("connect: %w", err)
	}
	return c, bufio.NewReader(c), p.Host, p.RequestURI(), nil
}

// get sends one GET on c and reads its answer.
func (h TCPHolder) get(c net.Conn, r *bufio.Reader, host, path string) error {
	_ = c.SetDeadline(time.Now().Add(h.timeout()))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return readOK(r)
}

func readOK(r *bufio.Reader) error {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("answer body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answer %d", resp.StatusCode)
	}
	return nil
}

// tick waits d or until ctx ends.
func tick(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// keepAlive sends a GET every KeepAliveEvery on one connection for dur; the
// first failure ends it (the connection is gone).
func (h TCPHolder) keepAlive(ctx context.Context, u string, dur time.Duration) LongLived {
	res := LongLived{Kind: KindKeepAlive, URL: u}
	c, r, host, path, err := h.conn(ctx, u)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		res.Requests++
		if err := h.get(c, r, host, path); err != nil {
			res.Failed++
			res.Error = fmt.Sprintf("request %d: %v", res.Requests, err)
			return res
		}
		if err := tick(ctx, KeepAliveEvery); err != nil {
			res.Error = err.Error()
			return res
		}
	}
	res.Survived = true
	return res
}

// upload sends a POST of UploadBytes paced over dur, then a GET on the
// same connection: both answered means nothing was cut.
func (h TCPHolder) upload(ctx context.Context, u string, dur time.Duration) LongLived {
	res := LongLived{Kind: KindUpload, URL: u, ExpectedBytes: UploadBytes}
	c, r, host, path, err := h.conn(ctx, u)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(h.timeout()))
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, host, UploadBytes); err != nil {
		res.Error = fmt.Sprintf("send: %v", err)
		return res
	}
	steps := max(int64(dur/KeepAliveEvery), 1)
	chunk := make([]byte, (UploadBytes+steps-1)/steps)
	for res.Bytes < UploadBytes {
		n := min(int64(len(chunk)), UploadBytes-res.Bytes)
		_ = c.SetDeadline(time.Now().Add(h.timeout()))
		w, err := c.Write(chunk[:n])
		res.Bytes += int64(w)
		if err != nil {
			res.Error = fmt.Sprintf("after %d bytes: %v", res.Bytes, err)
			return res
		}
		if res.Bytes < UploadBytes {
			if err := tick(ctx, KeepAliveEvery); err != nil {
				res.Error = err.Error()
				return res
			}
		}
	}
	_ = c.SetDeadline(time.Now().Add(h.timeout()))
	if err := readOK(r); err != nil {
		res.Error = "upload " + err.Error()
		return res
	}
	if err := h.get(c, r, host, path); err != nil {
		res.Error = "GET after the upload: " + err.Error()
		return res
	}
	res.Survived = true
	return res
}

// cutOnes names the long-lived connections that did not survive
// ("drain upload").
func cutOnes(ls []LongLived) []string {
	var out []string
	for _, l := range ls {
		if !l.Survived {
			out = append(out, l.Phase+" "+l.Kind)
		}
	}
	return out
}
