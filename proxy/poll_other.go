//go:build !linux

package proxy

import (
	"context"
	"errors"
)

// poller is the Linux epoll relay; elsewhere sessions use relayPumps.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.ErrUnsupported }

func (*poller) relay(context.Context, *session) bool { return false }
