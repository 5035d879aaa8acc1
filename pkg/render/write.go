package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// WriteTree writes DIR/<host>/<path> with each file's intended mode, so
// that no secret is ever readable by more than its mode allows and nothing
// outside DIR is touched: directories it creates are private (0700); each
// file is written to a fresh temp file (O_EXCL|O_NOFOLLOW, mode 0600 until
// written, then its own mode through the open descriptor) and renamed over
// the old name, so a planted symlink or a pre-existing world-writable file
// is replaced, never written through. All of it goes through an os.Root:
// a symlinked directory that leads out of DIR is refused. An interrupt
// stops it between files (the error wraps the context's cause).
func WriteTree(ctx context.Context, dir string, files []File) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	defer root.Close()
	made := map[string]bool{}
	for _, f := range files {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped: %w", context.Cause(ctx))
		}
		name := path.Clean(f.Host + "/" + strings.TrimPrefix(f.Path, "/"))
		if !made[path.Dir(name)] {
			if err := privateDirs(root, path.Dir(name)); err != nil {
				return fmt.Errorf("render: %s: %w", name, err)
			}
			made[path.Dir(name)] = true
		}
		if err := replaceFile(root, name, f.Content, f.Mode); err != nil {
			return fmt.Errorf("render: %s: %w", name, err)
		}
	}
	return nil
}

// privateDirs creates each directory of rel (inside root) as 0700, and
// closes up one that exists with a wider mode: the tree holds secrets.
func privateDirs(root *os.Root, rel string) error {
	p := ""
	for _, part := range strings.Split(rel, "/") {
		p = path.Join(p, part)
		err := root.Mkdir(p, 0o700)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		st, err := root.Lstat(p)
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: refused (render writes only into real directories under DIR)", p)
		}
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", p)
		}
		if st.Mode().Perm() != 0o700 {
			if err := root.Chmod(p, 0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceFile writes content to a new temp file next to name and renames it
// into place.
func replaceFile(root *os.Root, name string, content []byte, mode fs.FileMode) error {
	var tmp string
	var f *os.File
	for try := 0; ; try++ {
		tmp = fmt.Sprintf("%s/.%s.hactl-%d-%d", path.Dir(name), path.Base(name), os.Getpid(), try)
		var err error
		f, err = root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || try == 100 {
			return err
		}
	}
	err := func() error {
		if _, err := f.Write(content); err != nil {
			return err
		}
		// Through the descriptor: no path to race, and umask does not apply.
		if err := f.Chmod(mode); err != nil {
			return err
		}
		return f.Close()
	}()
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = f.Close()
		_ = root.Remove(tmp)
	}
	return err
}
