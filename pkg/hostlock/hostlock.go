// Package hostlock is hactl's per-host lock: one run at a time acts on a
// host, and a run whose connection is lost stops before another may act.
package hostlock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/remote"
)

// ErrLocked means another hactl run holds a host's lock.
var ErrLocked = errors.New("another hactl run holds the lock")

// LockPath is the per-host lock; under /run, so a reboot clears it.
const LockPath = "/run/hactl.lock"

// Lock timings. A holder refreshes its heartbeat (the owner file's mtime)
// every LockBeat; it gives the lock up, and stops acting on the host, once
// no heartbeat it sent has succeeded for LockLapse; a new run may break a
// lock whose heartbeat is older than LockStale.
const (
	LockBeat  = time.Second
	LockLapse = 8 * time.Second
	LockStale = 15 * time.Second
)

// Locker takes hactl's per-host lock. The zero value is the production
// lock (LockPath and the timings above); tests shorten them.
//
// The lock is a remote `flock` whose stdin is the holder's SSH session: when
// hactl dies or closes the connection, the lock goes with it. A connection
// that is lost without closing (packets dropped) would keep it until the
// host's TCP gives up, which can take many minutes; the heartbeat makes such
// a lock expire after LockStale instead, and never lets two runs act on one
// host:
//
//   - The holder's heartbeat is the owner file's mtime, set by a command it
//     sends every LockBeat over the connection it acts through. The holder
//     measures from when it *sent* its last heartbeat that succeeded, which is
//     never later than when the host executed it (the mtime). Once LockLapse
//     has passed since then, it stops: its host context is cancelled and it
//     starts no operation, so every operation it starts reached the host at
//     most LockLapse after the last mtime.
//   - A new run breaks a lock only when the heartbeat is older than LockStale
//     (> LockLapse), measured on the host's own clock. It first kills the
//     holder's sshd session process, so nothing more of the old connection
//     can start on the host, however late its packets arrive; the remote
//     flock then ends with that session.
//   - Work the old connection had started may still run (sshd does not kill
//     a session's commands when it dies). Every run, once it holds the flock
//     and before it writes its own owner line, looks for processes carrying
//     the previous holder's SSH_CLIENT (the same for every session of one
//     connection): while any runs, the new run gives the lock back and is
//     refused, naming those processes.
//
// The flock itself stays the only arbiter between new runs: breaking only
// ends the old holder, then the breaker takes the flock like anyone else.
type Locker struct {
	Path               string        // "" = LockPath
	Beat, Lapse, Stale time.Duration // 0 = LockBeat, LockLapse, LockStale
	// Command names what holds the lock ("apply", "failover-test") in the
	// message another run prints.
	Command string
}

// Held is a lock held on one host.
type Held struct {
	release func()
	lost    chan struct{}
}

// Release gives the lock back. It is idempotent.
func (h *Held) Release() { h.release() }

// Lost is closed when the heartbeat lapsed: the lock may be broken by
// another run, so the holder must stop acting on the host.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// Context returns a context that ends with ctx or when the lock is lost.
func (h *Held) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-h.lost:
			cancel(ErrLockLost)
		case <-c.Done():
		}
	}()
	return c, func() { cancel(context.Canceled) }
}

// ErrLockLost ends a holder's work on a host whose heartbeat lapsed.
var ErrLockLost = errors.New("lost the host lock: no heartbeat reached the host")

// Lock codes of the remote script.
const (
	lockHeld     = 75 // another run holds it (or its commands still run)
	lockCantOpen = 71 // the lock file cannot be opened
	lockNoFlock  = 72 // flock missing or failing for a reason other than contention
)

func (l Locker) path() string         { return orDefault(l.Path, LockPath) }
func (l Locker) beat() time.Duration  { return orDur(l.Beat, LockBeat) }
func (l Locker) lapse() time.Duration { return orDur(l.Lapse, LockLapse) }
func (l Locker) stale() time.Duration { return orDur(l.Stale, LockStale) }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// whoami is what the owner line says of this process: user@hostname and pid.
func whoami() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return clean(name+"@"+orDefault(host, "unknown")) + " pid=" + fmt.Sprint(os.Getpid())
}

// clean keeps an owner-line value one printable word.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == '=' || r > '~' {
			return '_'
		}
		return r
	}, s)
}

// script is the remote side of Lock: open, try, break a stale lock, check
// for the previous holder's orphaned work, write the owner line, hold.
func (l Locker) script(token string) string {
	q := remote.Quote
	owner := l.path() + ".owner"
	var b strings.Builder
	fmt.Fprintf(&b, "L=%s; O=%s\n", q(l.path()), q(owner))
	fmt.Fprintf(&b, "command -v flock >/dev/null 2>&1 || { echo 'flock is not installed' >&2; exit %d; }\n", lockNoFlock)
	fmt.Fprintf(&b, "if ! err=$( { true >>\"$L\"; } 2>&1); then echo \"cannot open $L: $err\" >&2; exit %d; fi\n", lockCantOpen)
	b.WriteString("exec 9>>\"$L\"\n")
	// owner KEY: a value from the owner line.
	b.WriteString(`field() { sed -n "1s/.* $1=\([^ ]*\).*/\1/p" "$O" 2>/dev/null; }` + "\n")
	b.WriteString(`age() { echo $(( $(date +%s) - $(stat -c %Y "$O" 2>/dev/null || date +%s) )); }` + "\n")
	b.WriteString(`report() { echo "owner $(head -n 1 "$O" 2>/dev/null)"; echo "age $(age)"; }` + "\n")
	// flock -n exits 1 on contention on every util-linux (no -E on EL7's);
	// anything else is a real failure, reported as such.
	fmt.Fprintf(&b, "flock -n 9; rc=$?\n")
	fmt.Fprintf(&b, "if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then echo \"flock $L failed (exit $rc)\" >&2; exit %d; fi\n", lockNoFlock)
	fmt.Fprintf(&b, "if [ $rc -eq 1 ]; then\n")
	fmt.Fprintf(&b, "  if [ \"$(age)\" -le %d ]; then report; exit %d; fi\n", int(l.stale().Seconds()), lockHeld)
	// Stale: end the holder's connection on the host (its sshd session
	// process), or the holder itself when it is not under sshd.
	b.WriteString(`  h=$(field holder); pp=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/"$h"/status 2>/dev/null)` + "\n")
	b.WriteString(`  case "$(cat /proc/"$pp"/comm 2>/dev/null)" in sshd*) kill "$pp" 2>/dev/null;; esac; kill "$h" 2>/dev/null` + "\n")
	fmt.Fprintf(&b, "  echo \"broke $(head -n 1 \"$O\" 2>/dev/null)\" >&2\n")
	fmt.Fprintf(&b, "  flock -w 10 9 || { report; exit %d; }\n", lockHeld)
	b.WriteString("fi\n")
	// We hold the flock. Is work of the previous holder's connection still
	// running (a holder that broke off mid-command)?
	b.WriteString(`prev=$(field ssh | tr , ' ')` + "\n")
	// One grep over every environ (NUL-separated) finds the candidates; only
	// those are looked at further. A loop forking per process cost ~0.2 s
	// on every apply, since each run comes from a new source port.
	b.WriteString(`if [ -n "$prev" ] && [ "$prev" != "${SSH_CLIENT:-}" ]; then busy=""; for e in $(grep -lzxF "SSH_CLIENT=$prev" /proc/[0-9]*/environ 2>/dev/null); do` +
		` p=${e%/environ}; n=${p#/proc/}; [ "$n" = $$ ] && continue; case "$(cat $p/comm 2>/dev/null)" in sftp-server|sshd*) continue;; esac;` +
		` busy="$busy $n"; done` + "\n")
	fmt.Fprintf(&b, "  if [ -n \"$busy\" ]; then report; echo \"busy$busy\"; exit %d; fi\nfi\n", lockHeld)
	fmt.Fprintf(&b, "printf '%%s\\n' \"token=%s since=$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) holder=$$ by=%s cmd=%s from=$(printf %%s \"${SSH_CLIENT%%%% *}\" | tr -c '0-9a-fA-F.:\\n' _) ssh=$(printf %%s \"${SSH_CLIENT:-}\" | tr ' ' ,)\" >\"$O.new\" && mv -f \"$O.new\" \"$O\" || exit %d\n",
		token, whoami(), clean(orDefault(l.Command, "apply")), lockCantOpen)
	b.WriteString("exec cat >/dev/null\n")
	return b.String()
}

// Lock takes the host's lock for as long as Release is not called, or
// fails: with ErrLocked (naming the holder) when another run holds it.
func (l Locker) Lock(ctx context.Context, c remote.Conn, host string) (*Held, error) {
	tok := make([]byte, 8)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	pr, pw := io.Pipe()
	// The lock session outlives ctx's cancellation until Release: an
	// interrupted run still holds the host while it restores.
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	var res remote.Result
	var runErr error
	go func() {
		res, runErr = c.Run(lctx, l.script(token), pr)
		close(done)
	}()
	held := &Held{lost: make(chan struct{})}
	var once sync.Once
	stopBeat := make(chan struct{})
	held.release = func() {
		once.Do(func() {
			close(stopBeat)
			_ = pw.Close()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			cancel()
		})
	}
	deadline := time.Now().Add(15 * time.Second)
	// The remote flock usually holds the lock within a few milliseconds
	// (one session start): poll soon, then back off to 20 ms.
	wait := 2 * time.Millisecond
	for {
		select {
		case <-done:
			held.release()
			return nil, l.refused(host, res, runErr)
		default:
		}
		o, err := remote.Output(ctx, c, "head -n 1 "+remote.Quote(l.path()+".owner")+" 2>/dev/null; true")
		if err != nil {
			held.release()
			return nil, fmt.Errorf("%s: lock: %w", host, err)
		}
		if strings.HasPrefix(o, "token="+token+" ") {
			go l.heartbeat(c, token, held, stopBeat)
			return held, nil
		}
		if time.Now().After(deadline) {
			held.release()
			return nil, fmt.Errorf("%s: lock: %s not acquired within 15s", host, l.path())
		}
		select {
		case <-ctx.Done():
			held.release()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// heartbeat refreshes the owner file's mtime every Beat while the owner
// line is still this run's, and closes lost once none succeeded for Lapse
// (counted from when the last good one was sent).
func (l Locker) heartbeat(c remote.Conn, token string, held *Held, stop <-chan struct{}) {
	owner := remote.Quote(l.path() + ".owner")
	cmd := "grep -q '^token=" + token + " ' " + owner + " && touch -c " + owner
	lastOK := time.Now()
	tick := time.NewTicker(l.beat())
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		sent := time.Now()
		bctx, cancel := context.WithTimeout(context.Background(), l.lapse())
		_, err := remote.Output(bctx, c, cmd)
		cancel()
		if err == nil {
			lastOK = sent
		}
		if time.Since(lastOK) > l.lapse() {
			close(held.lost)
			return
		}
	}
}

// refused explains why the lock script ended before holding the lock.
func (l Locker) refused(host string, res remote.Result, runErr error) error {
	if runErr != nil {
		return fmt.Errorf("%s: lock %s: %w", host, l.path(), runErr)
	}
	if res.ExitCode != lockHeld {
		return fmt.Errorf("%s: lock %s: %s (exit %d)", host, l.path(), orDefault(strings.TrimSpace(string(res.Stderr)), "failed"), res.ExitCode)
	}
	var owner, age, busy string
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "owner":
			owner = v
		case "age":
			age = v
		case "busy":
			busy = v
		}
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(owner) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	who := fmt.Sprintf("%s by %s (pid %s) from %s, since %s", orDefault(f["cmd"], "a run"), orDefault(f["by"], "?"), orDefault(f["pid"], "?"), orDefault(f["from"], "an unknown address"), orDefault(f["since"], "?"))
	if busy != "" {
		return fmt.Errorf("%s: %w: %s; its lock expired, but commands of its connection still run on the host (pids %s): the lock is free once they end", host, ErrLocked, who, busy)
	}
	return fmt.Errorf("%s: %w: %s; its last heartbeat on %s was %ss ago (a holder silent for %s loses the lock)", host, ErrLocked, who, l.path(), orDefault(age, "?"), l.stale())
}

// Lock takes the production lock (see Locker) for an apply.
func Lock(ctx context.Context, c remote.Conn, host string) (*Held, error) {
	return Locker{}.Lock(ctx, c, host)
}
