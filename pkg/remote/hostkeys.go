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

// hostKeys verifies one host's key against one known_hosts file with OpenSSH
// StrictHostKeyChecking=accept-new (or =yes) semantics.
//
// Concurrent dials that accept new keys serialise their appends with an
// exclusive flock(2) on the known_hosts file itself, and re-read the file
// under that lock; this also protects against other hactl processes and
// needs no shared state in the caller (on platforms without flock the
// append is a single O_APPEND write, which is atomic in practice).
type hostKeys struct {
	file      string
	hostport  string
	where     string
	acceptNew bool
	check     ssh.HostKeyCallback   // nil while the file does not exist
	known     []knownhosts.KnownKey // this host's entries, for HostKeyAlgorithms

	mu  sync.Mutex
	err error // the refusal the callback returned, reported verbatim by Dial
}

func loadHostKeys(file, hostport, where string, acceptNew bool) (*hostKeys, error) {
	hk := &hostKeys{file: file, hostport: hostport, where: where, acceptNew: acceptNew}
	check, err := knownhosts.New(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No file yet: every host is unknown, and accept-new creates it.
	case err != nil:
		return nil, fmt.Errorf("reading known_hosts: %w", err)
	default:
		hk.check = check
		hk.known = knownKeys(check, hostport)
	}
	return hk, nil
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
		h.where, h.file, key.Type(), ssh.FingerprintSHA256(key),
		port, keyscanType(key.Type()), Quote(host), Quote(h.file), ErrHostKeyUnknown)
}

func (h *hostKeys) changed(key ssh.PublicKey, want []knownhosts.KnownKey) error {
	var known []string
	for _, k := range want {
		known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
	}
	return fmt.Errorf("%s: HOST KEY CHANGED, refusing to connect (someone may be intercepting the connection): "+
		"the server offers %s %s but known_hosts has %s; "+
		"if the host was reinstalled, remove the old entry with: ssh-keygen -R %s -f %s: %w",
		h.where, key.Type(), ssh.FingerprintSHA256(key), strings.Join(known, ", "),
		Quote(knownhosts.Normalize(h.hostport)), Quote(h.file), ErrHostKeyChanged)
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
// re-reads the file: a concurrent dial may have recorded the same key (fine)
// or a different one (then this is a change and is refused).
func (h *hostKeys) appendKey(key ssh.PublicKey) error {
	fail := func(err error) error {
		return fmt.Errorf("%s: recording host key in %s: %w", h.where, h.file, err)
	}
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(h.file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return fail(err)
	}
	defer unlockFile(f)

	check, err := knownhosts.New(h.file)
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

	line := knownhosts.Line([]string{h.hostport}, key) + "\n"
	if needsNewline(f) {
		line = "\n" + line
	}
	// One write: with O_APPEND it lands whole at the end of the file.
	if _, err := f.WriteString(line); err != nil {
		return fail(err)
	}
	return nil
}

// needsNewline reports whether f is non-empty and does not end in a newline,
// so an appended line would be glued to the last entry.
func needsNewline(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return false
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil && err != io.EOF {
		return false
	}
	return last[0] != '\n'
}
