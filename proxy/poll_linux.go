package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// poller relays sessions on an epoll event loop running on one locked OS
// thread; a server runs one per core (GOMAXPROCS) and spreads its sessions
// over them. A plain session's relay then costs what it costs in C: an
// epoll_wait, a recv and a send per burst of messages, with no goroutine
// wake-ups; a TLS session's encryption is ended in front of the loop by
// two goroutines (tlsBridge), at the cost of a copy each way. Keeping to
// one thread keeps the kernel from moving the loop to the CPU of whichever
// process woke it, as it does with a goroutine that changes threads. A
// session whose connections are neither sockets nor TLS over one uses the
// goroutine pumps instead (relayPumps).
type poller struct {
	epfd  int
	wakeR int // read end of the pipe that interrupts epoll_wait
	wakeW int

	mu    sync.Mutex
	queue []func() // run on the loop thread

	ends []*pollEnd // by file descriptor; only the loop thread touches it
}

// pollEnd is one direction of a relay: it reads its own descriptor and
// writes to its peer's.
type pollEnd struct {
	fd      int
	rd      *reader
	peer    *pollEnd
	rel     *pollRelay
	maxBody int
	sent    *atomic.Int64
	p       int    // rd.buf[rd.r:p] is scanned and waiting to be written; kept at rd.r or beyond
	bad     error  // a bad header found by the scan, reported once p is written
	blocked bool   // the peer's socket is full: wait for EPOLLOUT
	paused  bool   // reading stops while a migrate command is answered
	extra   []byte // written to the peer before the buffer: an answer
	events  uint32
}

// pollRelay is a session being relayed by a poller, pl, which alone
// touches it.
type pollRelay struct {
	ctx              context.Context
	s                *session
	pl               *poller
	client, upstream *pollEnd
	ended            bool
	// A migrate command taken off the wire: waiting for the upstream to
	// answer what came before it, or being answered.
	pending [][]byte
	serving bool
	// stopCommand cancels the command being answered, when the relay
	// ends first.
	stopCommand context.CancelFunc
	// classifying is set while a long text is checked off the loop.
	classifying bool
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	pl := &poller{epfd: epfd, wakeR: p[0], wakeW: p[1]}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(pl.wakeR)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pl.wakeR, &ev); err != nil {
		return nil, err
	}
	go pl.run()
	return pl, nil
}

// post runs f on the loop thread.
func (pl *poller) post(f func()) {
	pl.mu.Lock()
	pl.queue = append(pl.queue, f)
	pl.mu.Unlock()
	syscall.Write(pl.wakeW, []byte{0})
}

// yieldEvery is how often the loop passes through the scheduler. A
// goroutine that has not been through it for 10 ms counts as running too
// long: the runtime's monitor thread then takes the loop's P away during
// its next epoll_wait and, having taken one, wakes every 20 µs for a
// while, which at one client costs a sixth of what the relaying does.
const yieldEvery = 5 * time.Millisecond

func (pl *poller) run() {
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, 256)
	var drain [64]byte
	yielded := time.Now()
	for {
		n, err := syscall.EpollWait(pl.epfd, events, -1)
		if now := time.Now(); now.Sub(yielded) > yieldEvery {
			runtime.Gosched()
			yielded = now
		}
		if err != nil {
			continue // EINTR
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == pl.wakeR {
				for {
					if n, _ := syscall.Read(pl.wakeR, drain[:]); n <= 0 {
						break
					}
				}
				pl.runQueue()
				continue
			}
			e := pl.end(fd)
			if e == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 {
				e.peer.flush()
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 && !e.rel.ended {
				e.readable(ev.Events)
			}
		}
	}
}

func (pl *poller) runQueue() {
	pl.mu.Lock()
	q := pl.queue
	pl.queue = nil
	pl.mu.Unlock()
	for _, f := range q {
		f()
	}
}

func (pl *poller) end(fd int) *pollEnd {
	if fd < len(pl.ends) {
		return pl.ends[fd]
	}
	return nil
}

// relay takes over the session's two connections and relays them until
// the session ends, when it calls the session's closed with the cause. A
// TLS client is relayed through a bridge (tlsBridge), so that every
// session goes through the loop. It returns false when a connection is
// neither a socket nor TLS over one; nothing has changed then.
func (pl *poller) relay(ctx context.Context, s *session) bool {
	ufd, err := dupSocket(s.upstream)
	if err != nil {
		return false
	}
	var cfd int
	if tc, isTLS := s.client.(*tls.Conn); isTLS {
		cfd, err = tlsBridge(tc)
	} else {
		cfd, err = dupSocket(s.client)
		if err == nil {
			s.client.Close()
		}
	}
	if err != nil {
		syscall.Close(ufd)
		return false
	}
	s.upstream.Close()
	s.cl.conn, s.up.conn = nil, nil
	m := s.srv.metrics
	rel := &pollRelay{ctx: ctx, s: s, pl: pl}
	rel.client = &pollEnd{fd: cfd, rd: s.cl, p: s.cl.r, rel: rel, maxBody: s.srv.cfg.MaxMessageSize, sent: &m.BytesFromClients}
	s.cl.classifyOff = true
	rel.upstream = &pollEnd{fd: ufd, rd: s.up, p: s.up.r, rel: rel, maxBody: maxUpstreamBody, sent: &m.BytesFromUpstreams}
	rel.client.peer, rel.upstream.peer = rel.upstream, rel.client
	s.notify = func(msg []byte) {
		pl.post(func() {
			if !rel.ended {
				rel.upstream.extra = append(rel.upstream.extra, msg...)
				rel.upstream.flush()
			}
		})
	}
	s.mu.Lock()
	s.stopRelay = func() { pl.post(func() { rel.end(rel.upstream, nil) }) }
	killed := s.killed
	// The loop has the sockets (the bridge the TLS connection).
	s.client, s.upstream = nil, nil
	s.mu.Unlock()
	pl.post(func() {
		if rel.ended { // killed before it was registered
			return
		}
		for len(pl.ends) <= max(cfd, ufd) {
			pl.ends = append(pl.ends, nil)
		}
		for _, e := range []*pollEnd{rel.client, rel.upstream} {
			pl.ends[e.fd] = e
			e.events = syscall.EPOLLIN
			ev := syscall.EpollEvent{Events: e.events, Fd: int32(e.fd)}
			if err := syscall.EpollCtl(pl.epfd, syscall.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
				rel.end(e, err)
				return
			}
		}
		if killed != nil {
			rel.end(rel.upstream, killed)
			return
		}
		// Bytes that arrived with the last startup messages.
		rel.client.forward()
		rel.upstream.forward()
		rel.client.release()
		rel.upstream.release()
	})
	return true
}

// dupSocket returns a duplicate of a plain socket's descriptor, which shares
// its non-blocking mode; the caller then closes conn.
func dupSocket(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, errors.ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	err = rc.Control(func(f uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		fd = int(r)
		if errno != 0 {
			derr = errno
		}
	})
	return fd, errors.Join(err, derr)
}

// tlsBridge ends a client's TLS in front of the loop: it returns one end
// of a socket pair, which the loop relays as it does a plain client's
// socket, while two goroutines copy between the pair's other end and the
// TLS connection. The TLS connection is closed once the loop has closed
// its end (after anything written to it, a farewell included, has gone
// out), or the client has gone.
func tlsBridge(tc *tls.Conn) (int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	f := os.NewFile(uintptr(fds[1]), "tls-bridge")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		syscall.Close(fds[0])
		return -1, err
	}
	pair := conn.(*net.UnixConn)
	go func() {
		io.Copy(pair, tc)
		pair.CloseWrite()
	}()
	go func() {
		io.Copy(tc, pair)
		tc.Close()
		pair.Close()
	}()
	return fds[0], nil
}

// rawIO receives from (SYS_RECVFROM) or sends to (SYS_SENDTO) a
// non-blocking socket without telling the Go scheduler: the call never
// blocks, and announcing it would wake the runtime's monitor thread for
// nothing. recvfrom and sendto skip the file layer that read and write pass
// through.
func rawIO(trap uintptr, fd int, b []byte, flags uintptr) (int, error) {
	n, _, errno := syscall.RawSyscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), flags, 0, 0)
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// readable reads what the descriptor has and forwards it.
func (e *pollEnd) readable(events uint32) {
	if e.blocked || e.paused {
		if events&(syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 {
			e.rel.end(e, io.EOF)
		}
		return
	}
	rd := e.rd
	if rd.buf == nil {
		rd.buf = borrow()
	}
	if rd.w == len(rd.buf) {
		// A message taken off the wire can end at the buffer's end (one
		// the buffer grew for ends there always): make room.
		rd.compact()
		e.p = rd.r
	}
	n, err := rawIO(syscall.SYS_RECVFROM, e.fd, rd.buf[rd.w:], 0)
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return
	case err != nil:
		e.rel.end(e, err)
		return
	case n == 0:
		e.rel.end(e, io.EOF)
		return
	}
	rd.w += n
	e.forward()
}

// forward scans the buffered bytes and writes what may pass.
func (e *pollEnd) forward() {
	if e.rd.r == e.rd.w {
		return
	}
	e.p, e.bad = e.rd.scan(e.maxBody)
	e.flush()
}

// flush writes the scanned bytes to the peer, waiting for EPOLLOUT when
// its socket is full.
func (e *pollEnd) flush() {
	rd := e.rd
	n, ok := e.writeOut(e.extra)
	if e.extra = e.extra[n:]; len(e.extra) == 0 {
		e.extra = nil // an answer's bytes are not kept
	}
	if !ok {
		return
	}
	n, ok = e.writeOut(rd.buf[rd.r:e.p])
	rd.r += n
	e.sent.Add(int64(n))
	if !ok {
		return
	}
	e.setBlocked(false)
	if e.bad != nil {
		e.rel.end(e, e.bad)
		return
	}
	if rd.deferred != nil {
		e.rel.classify()
		return
	}
	if rd.stopped() {
		batch := rd.takeMessage()
		e.p = rd.r
		if batch != nil {
			e.rel.take(batch)
			return
		}
		e.forward()
		return
	}
	rd.compact()
	e.p = rd.r
	e.release()
	if e.rel.pending != nil {
		e.rel.serve()
	}
}

// release gives e's buffer back when nothing waits in it.
func (e *pollEnd) release() {
	if e.rd.release(); e.rd.buf == nil {
		e.p = 0
	}
}

// writeOut writes b to the peer and returns how much it wrote, and false
// when flushing must stop: the peer's socket is full (e is blocked) or the
// relay ended.
func (e *pollEnd) writeOut(b []byte) (int, bool) {
	if e.rel.ended { // its descriptors are closed, their numbers maybe reused
		return 0, false
	}
	written := 0
	for written < len(b) {
		// MSG_NOSIGNAL: a peer gone is EPIPE, not a signal.
		n, err := rawIO(syscall.SYS_SENDTO, e.peer.fd, b[written:], syscall.MSG_NOSIGNAL)
		if n > 0 {
			written += n
		}
		switch {
		case err == syscall.EAGAIN:
			e.setBlocked(true)
			return written, false
		case err == syscall.EINTR:
		case err != nil:
			e.rel.end(e, writeError{err})
			return written, false
		}
	}
	return written, true
}

// setBlocked records whether e waits for its peer's socket, and asks epoll
// for the matching events: no reading of e while blocked, EPOLLOUT on the
// peer while blocked.
func (e *pollEnd) setBlocked(b bool) {
	if e.blocked == b {
		return
	}
	e.blocked = b
	e.watch()
	e.peer.watch()
}

func (e *pollEnd) watch() {
	var want uint32
	if !e.blocked && !e.paused {
		want |= syscall.EPOLLIN
	}
	if e.paused && e == e.rel.client && !e.rel.classifying {
		// Not read while a command is answered, but its leaving cancels
		// the command. (While a long text is checked, what the client
		// sent before it left still counts.)
		want |= syscall.EPOLLRDHUP
	}
	if e.peer.blocked {
		want |= syscall.EPOLLOUT
	}
	if want != e.events {
		e.events = want
		ev := syscall.EpollEvent{Events: want, Fd: int32(e.fd)}
		syscall.EpollCtl(e.rel.pl.epfd, syscall.EPOLL_CTL_MOD, e.fd, &ev)
	}
}

func (e *pollEnd) pause(p bool) {
	e.paused = p
	e.watch()
}

// classify has the long text the client's scan stopped at checked on a
// goroutine of its own, not on the loop; the client is not read until the
// verdict is in.
func (rel *pollRelay) classify() {
	c := rel.client
	if rel.classifying {
		return
	}
	rel.classifying = true
	c.pause(true)
	sql, pl, m, tenant := c.rd.deferred, rel.pl, rel.s.srv.cfg.Migrator, rel.s.route.Org != ""
	go func() {
		v := m.Take(sql, tenant)
		pl.post(func() {
			if rel.ended {
				return
			}
			rel.classifying = false
			c.rd.verdict = passVerdict
			if rel.s.decide(rel.ctx, v, sql) {
				c.rd.verdict = takeVerdict
			}
			c.rd.deferred = nil
			c.pause(false)
			c.forward()
		})
	}()
}

// take holds a migrate command from the client: the client is not read
// until it is answered.
func (rel *pollRelay) take(batch [][]byte) {
	rel.pending = batch
	rel.client.pause(true)
	rel.serve()
}

// serve answers the pending command once the upstream owes nothing and all
// that came before it has been written, on a goroutine of its own; the
// upstream is not read meanwhile, so the answer keeps its place.
func (rel *pollRelay) serve() {
	if rel.serving || rel.client.blocked || rel.upstream.blocked {
		return
	}
	if t := &rel.s.track; t.pending() || rel.upstream.rd.left > 0 {
		// (An upstream message half passed on: the answer goes after it.)
		switch {
		case t.copying:
			rel.passToCopy()
		case t.unflushed:
			rel.client.extra = append(rel.client.extra, t.inject(flushMessage)...)
			rel.client.flush()
		}
		return
	}
	rel.serving = true
	rel.upstream.pause(true)
	c, pl := rel.s.newCommand(rel.pending), rel.pl
	ctx, cancel := context.WithCancel(rel.ctx)
	rel.stopCommand = cancel
	go func() {
		rel.s.run(ctx, c)
		cancel()
		pl.post(func() { rel.served(c) })
	}()
}

// passToCopy gives the upstream the pending messages as they came, untaken:
// a COPY FROM STDIN sent before them has started, so they are the copy's
// (PostgreSQL fails the copy on them, as it would without the proxy).
func (rel *pollRelay) passToCopy() {
	for _, m := range rel.pending {
		rel.client.extra = append(rel.client.extra, m...)
	}
	rel.pending = nil
	rel.client.pause(false)
	rel.client.flush()
	rel.client.forward()
}

// served writes the command's answer, and what it sends upstream (see
// session.book) before anything more of the client's, and goes back to
// relaying.
func (rel *pollRelay) served(c *command) {
	if rel.ended {
		return
	}
	resp, abort := rel.s.book(c)
	rel.pending, rel.serving, rel.stopCommand = nil, false, nil
	rel.upstream.extra = append(rel.upstream.extra, resp...)
	rel.upstream.pause(false)
	rel.upstream.flush()
	rel.upstream.forward()
	rel.client.pause(false)
	if abort != nil {
		rel.client.extra = append(rel.client.extra, abort...)
		rel.client.flush()
	}
	rel.client.forward()
}

// end finishes the relay because of err on e's side: it deregisters and
// closes both descriptors, tells the client why where the stream allows,
// and hands the cause to the session.
func (rel *pollRelay) end(e *pollEnd, err error) {
	if rel.ended {
		return
	}
	rel.ended = true
	if rel.stopCommand != nil {
		rel.stopCommand()
	}
	var clientErr, upstreamErr error
	if e == rel.client {
		clientErr = err
	} else {
		upstreamErr = err
	}
	s, pl := rel.s, rel.pl
	for _, end := range []*pollEnd{rel.client, rel.upstream} {
		syscall.EpollCtl(pl.epfd, syscall.EPOLL_CTL_DEL, end.fd, nil)
		if end.fd < len(pl.ends) {
			pl.ends[end.fd] = nil
		}
	}
	cause := s.endCause(clientErr, upstreamErr)
	if msg := s.farewell(cause); msg != nil {
		syscall.Write(rel.client.fd, msg)
	}
	syscall.Close(rel.client.fd)
	syscall.Close(rel.upstream.fd)
	// The buffers go back here, on the loop that used them; the client's
	// only if no goroutine reads a text in it.
	if !rel.classifying {
		s.cl.r = s.cl.w
		s.cl.release()
	}
	s.up.r = s.up.w
	s.up.release()
	go s.closed(cause)
}
