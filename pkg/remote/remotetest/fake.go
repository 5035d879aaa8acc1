package remotetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/hactl/hactl/pkg/remote"
)

// Fake is a remote.Conn for unit tests of callers: it records every call in order
// and answers Run with Handler (nil Handler: exit 0, no output). It is safe
// for concurrent use; Handler is called without a lock held, so a Handler
// shared by goroutines must guard its own state. Cancelled contexts fail
// like the real Conn does, and so does use after Close.
type Fake struct {
	Handler func(cmd string, stdin []byte) remote.Result

	mu     sync.Mutex
	calls  []FakeCall
	closed bool
}

// FakeCall is one recorded Run (Cmd, Stdin) or Upload (Path, Content, Mode).
type FakeCall struct {
	Upload  bool
	Cmd     string
	Stdin   []byte
	Path    string
	Content []byte
	Mode    fs.FileMode
}

var _ remote.Conn = (*Fake)(nil)

func (f *Fake) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	if err := ctx.Err(); err != nil {
		return remote.Result{}, fmt.Errorf("fake: %w", err)
	}
	var in []byte
	if stdin != nil {
		var err error
		if in, err = io.ReadAll(stdin); err != nil {
			return remote.Result{}, fmt.Errorf("fake: reading stdin: %w", err)
		}
	}
	if err := f.record(FakeCall{Cmd: cmd, Stdin: in}); err != nil {
		return remote.Result{}, err
	}
	if f.Handler == nil {
		return remote.Result{}, nil
	}
	return f.Handler(cmd, in), nil
}

func (f *Fake) Upload(ctx context.Context, path string, content []byte, mode fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake: %w", err)
	}
	return f.record(FakeCall{Upload: true, Path: path, Content: bytes.Clone(content), Mode: mode})
}

func (f *Fake) record(c FakeCall) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("fake: use of closed Conn")
	}
	f.calls = append(f.calls, c)
	return nil
}

func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Calls returns a copy of every recorded Run and Upload, in call order.
func (f *Fake) Calls() []FakeCall {
	return f.filter(func(FakeCall) bool { return true })
}

// Runs returns the recorded Run calls, in order.
func (f *Fake) Runs() []FakeCall {
	return f.filter(func(c FakeCall) bool { return !c.Upload })
}

// Uploads returns the recorded Upload calls, in order.
func (f *Fake) Uploads() []FakeCall {
	return f.filter(func(c FakeCall) bool { return c.Upload })
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *Fake) filter(keep func(FakeCall) bool) []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FakeCall
	for _, c := range f.calls {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}
