//go:build !linux

package proxy

import "errors"

// poller is the Linux epoll relay; elsewhere sessions use relayPumps.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.ErrUnsupported }

func (*poller) relay(*session) (error, bool) { return nil, false }
