// Package hostlock is hactl's per-host lock: one run at a time acts on a
// host, and a run whose connection is lost stops before another may act.
package hostlock

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hactl/hactl/pkg/remote"
)

// ErrLocked means another hactl run holds a host's lock.
var ErrLocked = errors.New("another hactl run holds the lock")

// ErrUnverified (with ErrLocked) means the lock is held, but for seconds
// no hactl run's owner line named a live holder: something else holds it,
// or a run stalled before writing its line. The host fails alone.
var ErrUnverified = errors.New("the holder is not a hactl run that could be named")

// ErrBusy (with ErrLocked) means the lock expired, but commands of the run
// that held it still run on the host.
var ErrBusy = errors.New("commands of a lost run still run")

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
//   - The holder's heartbeat is the owner file's mtime, touched by the lock's
//     own shell for each line the holder sends down the lock session every
//     LockBeat; an SSH keepalive after the line proves the host received it.
//     The holder measures from when it *sent* its last heartbeat that got
//     through, which is never later than the touch. Once LockLapse has passed
//     since then (or the lock session ended), it starts no operation on the
//     host, so every operation it starts reached the host at most LockLapse
//     after the last mtime. One already started is not cut short: a
//     cancelled step would leave the host half-changed, and what still runs
//     keeps a new run out (the third point).
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
	// Wait is how long the remote flock waits for a holder to let go
	// before it reports contention; 0: it does not wait.
	Wait time.Duration
	// OrderedWait is Wait in LockAll's ordered retry (0: OrderedWait).
	OrderedWait time.Duration
}

// Held is a lock held on one host.
type Held struct {
	release func()
	lost    chan struct{}
	done    <-chan struct{} // closed when the lock session ended
}

// Release gives the lock back. It is idempotent.
func (h *Held) Release() { h.release() }

// Lost is closed when the heartbeat lapsed: the lock may be broken by
// another run, so the holder must stop acting on the host.
func (h *Held) Lost() <-chan struct{} { return h.lost }

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
// for the previous holder's orphaned work, write the owner line, say so,
// run then, and hold while heartbeats come in on stdin.
func (l Locker) script(token, then string) string {
	q := remote.Quote
	owner := l.path() + ".owner"
	var b strings.Builder
	fmt.Fprintf(&b, "L=%s; O=%s\n", q(l.path()), q(owner))
	fmt.Fprintf(&b, "command -v flock >/dev/null 2>&1 || { echo 'flock is not installed' >&2; exit %d; }\n", lockNoFlock)
	// Forks are what this script costs the host (30 hosts' lock scripts
	// share the CPU a no-change run waits for): builtins wherever they
	// give the same bytes. `command exec` opens fd 9 without exiting the
	// shell on failure; only then is the error captured for the message.
	fmt.Fprintf(&b, "if ! { command exec 9>>\"$L\"; } 2>/dev/null; then err=$( { true >>\"$L\"; } 2>&1); echo \"cannot open $L: $err\" >&2; exit %d; fi\n", lockCantOpen)
	// field KEY: fv is KEY's value in the owner line (the last " KEY="
	// on its first line, up to a space; "" without one).
	b.WriteString(`field() { fl=; { IFS= read -r fl <"$O"; } 2>/dev/null; case $fl in *" $1="*) fv=${fl##* "$1"=}; fv=${fv%% *};; *) fv=;; esac; }` + "\n")
	// sub S A B: r is S with every A replaced by B (tr for one character).
	b.WriteString(`sub() { r=; s=$1; while :; do case $s in *"$2"*) r=$r${s%%"$2"*}$3; s=${s#*"$2"};; *) r=$r$s; break;; esac; done; }` + "\n")
	b.WriteString(`age() { echo $(( $(date +%s) - $(stat -c %Y "$O" 2>/dev/null || date +%s) )); }` + "\n")
	b.WriteString(`report() { echo "owner $(head -n 1 "$O" 2>/dev/null)"; echo "age $(age)"; }` + "\n")
	// live: the owner line names the process that holds the lock now (its
	// fd 9 is the lock file). A holder writes its line only after it got
	// the flock, so for a moment the line is still the previous, finished
	// run's: it must be neither named nor judged stale.
	b.WriteString(`live() { field holder; h=$fv; [ -n "$h" ] && [ /proc/"$h"/fd/9 -ef "$L" ]; }` + "\n")
	// flock -n exits 1 on contention on every util-linux (no -E on EL7's);
	// anything else is a real failure, reported as such. With a wait (the
	// ordered retry of LockAll), -w waits for the holder to let go.
	try := "-n"
	if l.Wait > 0 {
		try = fmt.Sprintf("-w %d", max(int(l.Wait.Seconds()), 1))
	}
	fmt.Fprintf(&b, "flock %s 9; rc=$?\n", try)
	fmt.Fprintf(&b, "if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then echo \"flock $L failed (exit $rc)\" >&2; exit %d; fi\n", lockNoFlock)
	fmt.Fprintf(&b, "if [ $rc -eq 1 ]; then\n")
	b.WriteString("  i=0; until live || [ $i -ge 30 ]; do sleep 0.1; i=$((i+1)); done\n")
	fmt.Fprintf(&b, "  if ! live; then echo unverified; report; exit %d; fi\n", lockHeld)
	fmt.Fprintf(&b, "  if [ \"$(age)\" -le %d ]; then report; exit %d; fi\n", int(l.stale().Seconds()), lockHeld)
	// Stale: end the holder's connection on the host (its sshd session
	// process), or the holder itself when it is not under sshd.
	b.WriteString(`  field holder; h=$fv; pp=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/"$h"/status 2>/dev/null)` + "\n")
	b.WriteString(`  case "$(cat /proc/"$pp"/comm 2>/dev/null)" in sshd*) kill "$pp" 2>/dev/null;; esac; kill "$h" 2>/dev/null` + "\n")
	fmt.Fprintf(&b, "  echo \"broke $(head -n 1 \"$O\" 2>/dev/null)\" >&2\n")
	fmt.Fprintf(&b, "  flock -w 10 9 || { report; exit %d; }\n", lockHeld)
	b.WriteString("fi\n")
	// We hold the flock. Is work of the previous holder's connection still
	// running (a holder that broke off mid-command)?
	b.WriteString(`field ssh; sub "$fv" , ' '; prev=$r` + "\n")
	// One grep over every environ (NUL-separated) finds the candidates; only
	// those are looked at further. A loop forking per process cost ~0.2 s
	// on every apply, since each run comes from a new source port.
	b.WriteString(`if [ -n "$prev" ] && [ "$prev" != "${SSH_CLIENT:-}" ]; then busy=""; for e in $(grep -lzxF "SSH_CLIENT=$prev" /proc/[0-9]*/environ 2>/dev/null); do` +
		` p=${e%/environ}; n=${p#/proc/}; [ "$n" = $$ ] && continue; case "$(cat $p/comm 2>/dev/null)" in sftp-server|sshd*) continue;; esac;` +
		` busy="$busy $n"; done` + "\n")
	fmt.Fprintf(&b, "  if [ -n \"$busy\" ]; then report; echo \"busy$busy\"; exit %d; fi\nfi\n", lockHeld)
	// from: the client's address, any byte but [0-9a-fA-F.:] as _ (tr only
	// for an address that has one); ssh: SSH_CLIENT with commas for spaces.
	b.WriteString(`from=${SSH_CLIENT%% *}; case $from in *[!0123456789abcdefABCDEF.:]*) from=$(printf %s "$from" | tr -c '0-9a-fA-F.:\n' _);; esac; sub "${SSH_CLIENT:-}" ' ' ,` + "\n")
	fmt.Fprintf(&b, "printf '%%s\\n' \"token=%s since=$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) holder=$$ by=%s cmd=%s from=$from ssh=$r\" >\"$O.new\" && mv -f \"$O.new\" \"$O\" || exit %d\n",
		token, whoami(), clean(orDefault(l.Command, "apply")), lockCantOpen)
	fmt.Fprintf(&b, "echo %s\n", q(markLocked+token))
	if then != "" {
		// Its own shell, stdin closed: it must not read the heartbeats.
		fmt.Fprintf(&b, "sh -c %s </dev/null; echo \"%s%s $?\"\n", q(then), markThen, token)
	}
	// Hold: one heartbeat line in, one touch of the owner file (see
	// heartbeat); stdin's end (Release, or the connection gone) ends the
	// shell, and the flock with it.
	b.WriteString("while IFS= read -r _; do touch -c \"$O\"; done\n")
	return b.String()
}

// Lock takes the host's lock for as long as Release is not called, or
// fails: with ErrLocked (naming the holder) when another run holds it.
func (l Locker) Lock(ctx context.Context, c remote.Conn, host string) (*Held, error) {
	h, _, err := l.LockAnd(ctx, c, host, "")
	return h, err
}

// Markers the lock script prints on its stdout.
const (
	markLocked = "@@hactl-locked "
	markThen   = "@@hactl-then "
)

// LockAnd is Lock, then runs then (a read-only script; "" for none) under
// the lock and returns its stdout; a non-zero exit is a *remote.ExitError.
// On a connection that streams, the lock, then and the heartbeat share ONE
// session: one round trip for what used to take three or more.
func (l Locker) LockAnd(ctx context.Context, c remote.Conn, host, then string) (*Held, string, error) {
	tok := make([]byte, 8)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	stream := remote.CanStream(c)
	script := then
	if !stream {
		script = ""
	}
	pr, pw := io.Pipe()
	// The lock session outlives ctx's cancellation until Release: an
	// interrupted run still holds the host while it restores.
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	out := newScanner(token)
	var res remote.Result
	var runErr error
	go func() {
		if stream {
			res, runErr = c.(remote.Streamer).Stream(lctx, l.script(token, script), pr, out)
		} else {
			res, runErr = c.Run(lctx, l.script(token, script), pr)
		}
		close(done)
	}()
	held := &Held{lost: make(chan struct{}), done: done}
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
	fail := func(err error) (*Held, string, error) {
		held.release()
		return nil, "", err
	}
	deadline := time.Now().Add(15*time.Second + l.Wait)
	if stream {
		select {
		case <-out.locked:
		case <-done:
			out.mu.Lock()
			res.Stdout = append([]byte(nil), out.buf.Bytes()...)
			out.mu.Unlock()
			return fail(l.refused(host, res, runErr))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(time.Until(deadline)):
			return fail(fmt.Errorf("%s: lock: %s not acquired within %s", host, l.path(), 15*time.Second+l.Wait))
		}
	} else if err := l.pollOwner(ctx, c, host, token, done, &res, &runErr, deadline); err != nil {
		return fail(err)
	}
	go l.heartbeat(c, pw, held, stopBeat)
	if then == "" {
		return held, "", nil
	}
	if !stream {
		o, err := remote.Output(ctx, c, then)
		if err != nil && !isExit(err) {
			return fail(fmt.Errorf("%s: %w", host, err))
		}
		return held, o, err
	}
	select {
	case <-out.then:
	case <-done:
		return fail(fmt.Errorf("%s: lock %s: the lock session ended while it ran the command under it: %w", host, l.path(), orErr(runErr)))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	o, code := out.thenResult()
	if code != 0 {
		return held, o, remote.NewExitError(then, remote.Result{Stdout: []byte(o), ExitCode: code})
	}
	return held, o, nil
}

func isExit(err error) bool { _, ok := remote.AsExit(err); return ok }

func orErr(err error) error {
	if err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}

// pollOwner waits, on a connection that cannot stream, until the owner file
// carries token (the lock is held) or the lock script ended (refused).
func (l Locker) pollOwner(ctx context.Context, c remote.Conn, host, token string, done <-chan struct{}, res *remote.Result, runErr *error, deadline time.Time) error {
	// The remote flock usually holds the lock within a few milliseconds
	// (one session start): poll soon, then back off to 20 ms.
	wait := 2 * time.Millisecond
	for {
		select {
		case <-done:
			return l.refused(host, *res, *runErr)
		default:
		}
		o, err := remote.Output(ctx, c, "head -n 1 "+remote.Quote(l.path()+".owner")+" 2>/dev/null; true")
		if err != nil {
			return fmt.Errorf("%s: lock: %w", host, err)
		}
		if strings.HasPrefix(o, "token="+token+" ") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: lock: %s not acquired within %s", host, l.path(), 15*time.Second+l.Wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// scanner reads the lock script's stdout as it comes: it keeps all of it
// (a refusal's report is parsed once the script ended) and signals the
// markers.
type scanner struct {
	token        string
	mu           sync.Mutex
	buf          bytes.Buffer
	locked, then chan struct{}
	lockedAt     int // offset in buf just after the locked marker line
	thenOut      string
	thenCode     int
	seen         int // how far buf has been scanned for markers
}

func newScanner(token string) *scanner {
	return &scanner{token: token, locked: make(chan struct{}), then: make(chan struct{}), lockedAt: -1}
}

func (s *scanner) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	b := s.buf.Bytes()
	for {
		i := bytes.IndexByte(b[s.seen:], '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(b[s.seen : s.seen+i])
		s.seen += i + 1
		switch {
		case s.lockedAt < 0 && line == markLocked+s.token:
			s.lockedAt = s.seen
			close(s.locked)
		case s.lockedAt >= 0 && strings.HasPrefix(line, markThen+s.token+" "):
			s.thenOut = string(b[s.lockedAt : s.seen-i-1])
			s.thenCode, _ = strconv.Atoi(strings.TrimPrefix(line, markThen+s.token+" "))
			close(s.then)
		}
	}
}

func (s *scanner) thenResult() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.thenOut, s.thenCode
}

// heartbeat sends one line every Beat down the lock's own session: the lock
// script on the host touches the owner file for each line it reads (the
// mtime a new run judges staleness by). A keepalive after each line proves
// the host's sshd received it (one connection's packets arrive in order);
// no session, no process on the host beyond that touch, so neither a busy
// host nor a busy control machine starves it the way a new session per
// beat was starved (issue 23: every host of a loaded 30-host apply lost its
// lock). It closes lost once none got through for Lapse, counted from when
// the last good one was sent, or at once when the lock session ends.
func (l Locker) heartbeat(c remote.Conn, beat io.Writer, held *Held, stop <-chan struct{}) {
	var lastOK atomic.Int64
	lastOK.Store(time.Now().UnixNano())
	lose := sync.OnceFunc(func() { close(held.lost) })
	go func() {
		tick := time.NewTicker(l.beat())
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sent := time.Now()
			if _, err := beat.Write([]byte("\n")); err != nil {
				return
			}
			bctx, cancel := context.WithTimeout(context.Background(), l.lapse())
			err := ping(bctx, c)
			cancel()
			if err == nil {
				lastOK.Store(sent.UnixNano())
			}
		}
	}()
	watch := time.NewTicker(l.beat() / 2)
	defer watch.Stop()
	for {
		select {
		case <-stop:
			return
		case <-held.done:
			// The lock script ended while we hold the lock: it was broken
			// or the connection died; either way the lock is gone.
			select {
			case <-stop:
			default:
				lose()
			}
			return
		case <-watch.C:
		}
		if time.Since(time.Unix(0, lastOK.Load())) > l.lapse() {
			lose()
			return
		}
	}
}

// ping proves the host received what was sent before; a connection that
// cannot ping is taken at its word that the write went out.
func ping(ctx context.Context, c remote.Conn) error {
	p, ok := c.(remote.Pinger)
	if !ok {
		return nil
	}
	if err := p.Ping(ctx); err != nil && !errors.Is(err, remote.ErrNoPing) {
		return err
	}
	return nil
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
		case "unverified":
			// The owner file still names a finished run: naming it would
			// send the operator after the wrong process.
			return fmt.Errorf("%s: %w: a run that took it just now and has not yet written its owner line to %s.owner (the line there is a finished run's)%w", host, ErrLocked, l.path(), quiet{ErrUnverified})
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
		return fmt.Errorf("%s: %w: %s; its lock expired, but commands of its connection still run on the host (pids %s): the lock is free once they end%w", host, ErrLocked, who, busy, quiet{ErrBusy})
	}
	return fmt.Errorf("%s: %w: %s; its last heartbeat on %s was %ss ago (a holder silent for %s loses the lock)", host, ErrLocked, who, l.path(), orDefault(age, "?"), l.stale())
}

// quiet wraps an error for errors.Is without adding to the message.
type quiet struct{ err error }

func (q quiet) Error() string { return "" }
func (q quiet) Unwrap() error { return q.err }
