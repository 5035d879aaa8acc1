package sshconfig

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadMissingIsEmpty(t *testing.T) {
	f, err := Load(filepath.Join(t.TempDir(), "nope"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.Lookup("/h", "lab1", "10.0.0.1"); err != nil || s != (Settings{}) {
		t.Fatalf("%+v %v", s, err)
	}
	var nilFile *File
	if s, _ := nilFile.Lookup("/h", "x"); s != (Settings{}) {
		t.Fatalf("nil file: %+v", s)
	}
}

func TestLookup(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	text := `Host web-*
  HostName %h.example.net
  IdentityFile "~/.ssh/id web"
  Port 2200

Host 10.1.*
  User byaddr
  Port 9

Host *
  User everyone
  ProxyJump none
`
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Lookup("/home/u", "web-1", "10.1.0.5")
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{HostName: "web-1.example.net", User: "byaddr", Port: 2200, IdentityFile: "/home/u/.ssh/id web", ProxyJump: "none"}
	if s != want {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
	if _, err := Parse("bad", "Host x\n  Port http\n"); err == nil {
		if _, err := mustParse(t, "Host x\n  Port http\n").Lookup("", "x"); err == nil {
			t.Errorf("a bad Port is not reported")
		}
	}
}

func mustParse(t *testing.T, s string) *File {
	f, err := Parse("t", s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
