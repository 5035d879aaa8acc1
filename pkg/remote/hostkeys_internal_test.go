package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestAcceptNewRefusesPatterns: whatever address a caller passes, accept-new
// never writes a host field that known_hosts would read as a second line or a
// wildcard ("[::1%x\n*]:22" once made OpenSSH trust any key on port 22).
func TestAcceptNewRefusesPatterns(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, hostport := range []string{"[::1%x\n*]:22", "[::1%*]:22", "a b:22", "*:22", "a,b:22", "!a:22", "a?:22", "[::1%x\r]:22", "a\x00:22", "[::1%\x1b]:22"} {
		file := filepath.Join(t.TempDir(), "known_hosts")
		hk, err := loadHostKeys(file, nil, hostport, "h", true)
		if err != nil {
			t.Fatal(err)
		}
		err = hk.verify(key)
		if err == nil || !strings.Contains(err.Error(), "refusing to write host") {
			t.Errorf("%q: err = %v, want a refusal", hostport, err)
		}
		if _, serr := os.Stat(file); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%q: known_hosts was created", hostport)
		}
	}
	// Plain names and addresses still work.
	for _, hostport := range []string{"[fe80::1%eth0]:22", "lb1.example.com:2222", "10.0.0.1:22", "my_host:22"} {
		file := filepath.Join(t.TempDir(), "known_hosts")
		hk, err := loadHostKeys(file, nil, hostport, "h", true)
		if err != nil {
			t.Fatal(err)
		}
		if err := hk.verify(key); err != nil {
			t.Errorf("%q: %v", hostport, err)
		}
	}
}
