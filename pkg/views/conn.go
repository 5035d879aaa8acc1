package views

import (
	"context"
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/hactl/hactl/pkg/remote"
)

// connMessage is a connect failure said once, without the "connect HOST:"
// prefix the host column already says, and with a hint at the likely cause.
func connMessage(host string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "connect "+host+": ")
	// "HOST (ADDR): connect: … dial tcp ADDR: …" names the address twice.
	msg = dialAddr.ReplaceAllString(msg, "")
	if hint := connHint(err); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// dialAddr is net's "dial tcp ADDR: " inside a message that named ADDR already.
var dialAddr = regexp.MustCompile(`dial tcp \S+: `)

func connHint(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, remote.ErrHostKeyUnknown), errors.Is(err, remote.ErrHostKeyChanged):
		return "" // the message says what to do
	case errors.Is(err, context.Canceled):
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "is sshd running, and the port right?"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route: check the address"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "host down or filtered"
	case errors.Is(err, remote.ErrAuth):
		return "check the key (private_key_file, agent, ~/.ssh/id_*) and the user"
	}
	return ""
}

// hostError is the message of a host's error: a connect failure (the host
// was never reached, and conn says the verb reports those as such) said
// the short way.
func hostError(name string, reachable bool, err error, conn bool) string {
	if conn && !reachable {
		return connMessage(name, err)
	}
	return err.Error()
}
