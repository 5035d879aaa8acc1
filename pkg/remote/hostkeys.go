package remote

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys verifies one host's key with OpenSSH StrictHostKeyChecking=
// accept-new (or =yes) semantics against the user's known_hosts file and the
// system-wide ones (GlobalKnownHostsFile): a key on record in any of them is
// trusted, a host on record with other keys in any of them is refused, and
// accept-new records a key only for a host that none of them knows. New
// entries go into the user's file only, hashed when the file already holds
// hashed entries (ssh's HashKnownHosts).
//
// The file is rewritten atomically (a temp file in the same directory with
// the file's mode, fsynced, renamed over it). Concurrent dials that accept
// new keys serialise with an exclusive flock(2) on the file itself and
// re-read it under that lock; a waiter whose file was renamed away while it
// waited locks the new one. This also protects against other hactl
// processes and needs no shared state in the caller.
type hostKeys struct {
	file      string
	system    []string // system-wide files that exist
	hostport  string
	where     string
	acceptNew bool
	check     ssh.HostKeyCallback   // nil while no file exists
	known     []knownhosts.KnownKey // this host's entries, for HostKeyAlgorithms

	mu  sync.Mutex
	err error // the refusal the callback returned, reported verbatim by Dial
}

// defaultSystemKnownHosts is OpenSSH's GlobalKnownHostsFile default.
func defaultSystemKnownHosts() []string {
	return []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
}

func loadHostKeys(file string, system []string, hostport, where string, acceptNew bool) (*hostKeys, error) {
	hk := &hostKeys{file: file, hostport: hostport, where: where, acceptNew: acceptNew}
	for _, f := range system {
		if _, err := os.Stat(f); err == nil {
			hk.system = append(hk.system, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading system known_hosts: %w", err)
		}
	}
	check, err := hk.load()
	if err != nil {
		return nil, err
	}
	if check != nil {
		hk.check = check
		hk.known = knownKeys(check, hostport)
	}
	return hk, nil
}

// load reads the user's file (if it exists) and the system files; nil when
// there is none.
func (h *hostKeys) load() (ssh.HostKeyCallback, error) {
	files := h.system
	if _, err := os.Stat(h.file); err == nil {
		files = append([]string{h.file}, files...)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading known_hosts: %w", err)
	}
	if len(files) == 0 {
		// No file yet: every host is unknown, and accept-new creates it.
		return nil, nil
	}
	check, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("reading known_hosts: %w", err)
	}
	return check, nil
}

// probeKey is a public key no known_hosts file can contain. Checking it makes
// the knownhosts callback return a KeyError listing every key on record for
// the host: the package has no other way to look entries up.
type probeKey struct{}

func (probeKey) Type() string    { return "hactl-probe" }
func (probeKey) Marshal() []byte { return ssh.Marshal(struct{ Name string }{"hactl-probe"}) }
func (probeKey) Verify([]byte, *ssh.Signature) error {
	return errors.New("probe key verifies nothing")
}

// probeAddr stands in for the remote address, which knownhosts only needs to
// parse: it prefers the hostname argument.
func probeAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero, Port: 22} }

func knownKeys(check ssh.HostKeyCallback, hostport string) []knownhosts.KnownKey {
	var keyErr *knownhosts.KeyError
	if errors.As(check(hostport, probeAddr(), probeKey{}), &keyErr) {
		return keyErr.Want
	}
	return nil
}

// algorithms restricts the host key algorithms to the types on record for the
// host. Otherwise the server may pick a type that is not in the file (x/crypto
// prefers ECDSA to Ed25519, for instance) and knownhosts reports a spurious
// mismatch. nil (no entries) keeps x/crypto's defaults.
func (h *hostKeys) algorithms() []string {
	var algos []string
	seen := map[string]bool{}
	for _, k := range h.known {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		// One RSA key serves three signature algorithms; prefer SHA-2.
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

func (h *hostKeys) knownTypes() []string {
	var types []string
	seen := map[string]bool{}
	for _, k := range h.known {
		if t := k.Key.Type(); !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	return types
}

// failure is the error the callback refused the server's key with, if any.
func (h *hostKeys) failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *hostKeys) callback(_ string, _ net.Addr, key ssh.PublicKey) error {
	err := h.verify(key)
	if err != nil {
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
	}
	return err
}

func (h *hostKeys) verify(key ssh.PublicKey) error {
	var err error = &knownhosts.KeyError{}
	if h.check != nil {
		err = h.check(h.hostport, probeAddr(), key)
	}
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &revoked):
		return fmt.Errorf("%s: the server's %s host key %s is marked @revoked in %s:%d; refusing to connect",
			h.where, key.Type(), ssh.FingerprintSHA256(key), revoked.Revoked.Filename, revoked.Revoked.Line)
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		return h.changed(key, keyErr.Want)
	case errors.As(err, &keyErr):
		if !h.acceptNew {
			return h.unknown(key)
		}
		return h.appendKey(key)
	default:
		return fmt.Errorf("%s: checking host key: %w", h.where, err)
	}
}

func (h *hostKeys) unknown(key ssh.PublicKey) error {
	host, port, _ := net.SplitHostPort(h.hostport)
	return fmt.Errorf("%s: host key not in %s: the server offers %s %s; "+
		"after checking that fingerprint, rerun with --accept-new-host-keys to trust it, "+
		"or record it with: ssh-keyscan -p %s -t %s %s >> %s: %w",
		h.where, strings.Join(append([]string{h.file}, h.system...), " or "), key.Type(), ssh.FingerprintSHA256(key),
		port, keyscanType(key.Type()), Quote(host), Quote(h.file), ErrHostKeyUnknown)
}

func (h *hostKeys) changed(key ssh.PublicKey, want []knownhosts.KnownKey) error {
	var known, fix []string
	seen := map[string]bool{}
	for _, k := range want {
		known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		if !seen[k.Filename] {
			seen[k.Filename] = true
			fix = append(fix, "ssh-keygen -R "+Quote(knownhosts.Normalize(h.hostport))+" -f "+Quote(k.Filename))
		}
	}
	return fmt.Errorf("%s: HOST KEY CHANGED, refusing to connect (someone may be intercepting the connection): "+
		"the server offers %s %s but known_hosts has %s; "+
		"if the host was reinstalled, remove the old entry with: %s: %w",
		h.where, key.Type(), ssh.FingerprintSHA256(key), strings.Join(known, ", "),
		strings.Join(fix, " and "), ErrHostKeyChanged)
}

// keyscanType maps a key type to ssh-keyscan's -t name.
func keyscanType(t string) string {
	switch {
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	default:
		return strings.TrimPrefix(t, "ssh-")
	}
}

// appendKey records key for the host (accept-new). Under the file lock it
// re-reads the files: a concurrent dial may have recorded the same key
// (fine) or a different one (then this is a change and is refused).
func (h *hostKeys) appendKey(key ssh.PublicKey) error {
	fail := func(err error) error {
		return fmt.Errorf("%s: recording host key in %s: %w", h.where, h.file, err)
	}
	if err := checkHostPattern(h.hostport); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return fail(err)
	}
	// A symlinked known_hosts (dotfiles) stays a symlink: the rename
	// replaces its target.
	target := h.file
	if t, err := filepath.EvalSymlinks(h.file); err == nil {
		target = t
	}
	// A device, pipe or directory (known_hosts_file = "/dev/null") is
	// never replaced by a regular file, and never "records" a key that
	// the next run would not find.
	if st, err := os.Lstat(target); err == nil && !st.Mode().IsRegular() {
		return fail(fmt.Errorf("%s is not a regular file (%s); hactl never replaces it", target, st.Mode().Type()))
	}
	f, err := openLocked(target)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	defer unlockFile(f)

	check, err := h.load()
	if err != nil {
		return fail(err)
	}
	var keyErr *knownhosts.KeyError
	err = check(h.hostport, probeAddr(), key)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		return h.changed(key, keyErr.Want)
	case !errors.As(err, &keyErr):
		return fail(err)
	}

	old, err := io.ReadAll(f)
	if err != nil {
		return fail(err)
	}
	name := knownhosts.Normalize(h.hostport)
	if hasHashedEntry(old) {
		name = knownhosts.HashHostname(name)
	}
	content := append([]byte(nil), old...)
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	content = append(content, knownhosts.Line([]string{name}, key)+"\n"...)
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := replaceFile(target, content, st); err != nil {
		return fail(err)
	}
	return nil
}

// openLocked opens (creating) path and locks it. A holder that renamed a new
// file over path while this one waited leaves it locking an orphan, so the
// lock is only kept once it is the file path names.
func openLocked(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := lockFile(f); err != nil {
			f.Close()
			return nil, err
		}
		fst, ferr := f.Stat()
		pst, perr := os.Stat(path)
		if ferr == nil && perr == nil && os.SameFile(fst, pst) {
			return f, nil
		}
		unlockFile(f)
		f.Close()
		if ferr != nil {
			return nil, ferr
		}
	}
}

// replaceFile writes content to a temp file next to path with old's mode
// (and owner, when allowed), fsyncs it and renames it over path: a crash or
// a full disk leaves the old file or the new one, never half of one.
func replaceFile(path string, content []byte, old fs.FileInfo) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".hactl-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(old.Mode().Perm()); err != nil {
		return err
	}
	keepOwner(tmp, old)
	if _, err := tmp.Write(content); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	// The rename itself is durable once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// hasHashedEntry reports whether a known_hosts text holds a hashed host
// ("|1|salt|hash"): its owner hashes host names (HashKnownHosts), so a new
// entry must not name the host in clear.
func hasHashedEntry(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
			fields = fields[1:]
		}
		if len(fields) > 0 && strings.HasPrefix(fields[0], "|1|") {
			return true
		}
	}
	return false
}

// checkHostPattern refuses to write a host that is not a plain name or
// address: known_hosts host fields are patterns, so a newline would start a
// second entry, a blank would end the field, and '*', '?', ',' or '!'
// would make the entry match other hosts. The inventory refuses such
// addresses already; this holds whatever the caller passes.
func checkHostPattern(hostport string) error {
	for _, r := range hostport {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(".-_:[]%", r):
		default:
			return fmt.Errorf("refusing to write host %q: known_hosts would read %q as part of a pattern or a new line", hostport, r)
		}
	}
	return nil
}
