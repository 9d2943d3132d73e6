package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgmigrate/pgmigrate-proxy/intercept"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// Router decides where a client session goes.
type Router interface {
	Route(ctx context.Context, req policy.Request) (policy.Route, error)
}

// Config is what a Server needs to know.
type Config struct {
	// Router routes each session. Required.
	Router Router
	// TLS, when set, is offered to clients that send SSLRequest.
	TLS *tls.Config
	// StartupTimeout bounds the time from accept to the first
	// ReadyForQuery.
	StartupTimeout time.Duration
	// MaxMessageSize is the largest message body, in bytes, accepted from
	// a client.
	MaxMessageSize int
	// MaxClientConns is the most client connections served at once.
	MaxClientConns int
	// Logger receives connection events. Required.
	Logger *slog.Logger
	// Metrics, when set, is updated as the server works.
	Metrics *Metrics
	// Migrator, when set, answers the migrate commands that clients send
	// as simple queries; without it every byte passes through.
	Migrator Migrator
}

// Migrator answers the commands the proxy takes off the wire.
type Migrator interface {
	// Take decides what becomes of the SQL text of a Query or Parse of a
	// tenant session (tenant true) or an admin session: passed on,
	// answered by the Migrator, or passed on and audited. It runs on the
	// relay's hot path for every Query and Parse, so for ordinary queries
	// it must be cheap and must not allocate.
	Take(sql []byte, tenant bool) intercept.Verdict
	// Audit records a statement Take said to audit, copying what it
	// keeps; it runs on the relay loop and must not block. When it
	// returns false the statement is taken and answered (refused)
	// instead.
	Audit(ctx context.Context, sess intercept.Session, sql []byte) bool
	// Query runs the command in sql for the session and returns the
	// messages that answer it, ReadyForQuery excepted.
	Query(ctx context.Context, sess intercept.Session, sql string) []byte
	// Extended answers extended-protocol messages taken for conv, in
	// order, ReadyForQuery excepted.
	Extended(ctx context.Context, sess intercept.Session, conv *intercept.Conversation, msgs [][]byte) []byte
}

// Server serves PostgreSQL clients. Create it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	keys    cancelKeys
	// pollers are the event loops, one per core (none where the
	// platform has none); nextPoller picks the next session's.
	pollers    []*poller
	nextPoller atomic.Uint32

	mu       sync.Mutex
	sessions map[*session]struct{}
	ln       net.Listener
	closing  bool
	wg       sync.WaitGroup
}

// Size of each direction's relay buffer.
const bufferSize = 32 << 10

// buffers lends relay buffers: a session holds one for a direction only
// while bytes of that direction wait in it, so an idle session holds
// none.
var buffers = sync.Pool{New: func() any { return new([bufferSize]byte) }}

// borrow returns a relay buffer of the pool's.
func borrow() []byte { return buffers.Get().(*[bufferSize]byte)[:] }

// New returns a Server for cfg.
func New(cfg Config) *Server {
	m := cfg.Metrics
	if m == nil {
		m = &Metrics{}
	}
	srv := &Server{cfg: cfg, log: cfg.Logger, metrics: m, sessions: make(map[*session]struct{})}
	for range runtime.GOMAXPROCS(0) {
		pl, err := newPoller()
		if err != nil {
			srv.log.Warn("no event loop; relaying with goroutines", keyError, err.Error())
			break
		}
		srv.pollers = append(srv.pollers, pl)
	}
	return srv
}

// poller returns the event loop of the next session, taking the loops in
// turn; nil where the platform has none.
func (srv *Server) poller() *poller {
	if len(srv.pollers) == 0 {
		return nil
	}
	return srv.pollers[srv.nextPoller.Add(1)%uint32(len(srv.pollers))]
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on ln until ctx ends or Shutdown is called.
// Each session gets a child of ctx: when ctx ends, every session is ended
// with 57P01.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		return ErrServerClosed
	}
	srv.ln = ln
	srv.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		srv.killAll()
	})
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			srv.mu.Lock()
			closing := srv.closing
			srv.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s := srv.newSession(conn)
		if s == nil {
			conn.Close()
			return ErrServerClosed
		}
		go s.serve(ctx)
	}
}

func (srv *Server) newSession(conn net.Conn) *session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closing {
		return nil
	}
	s := &session{srv: srv, client: conn, started: time.Now()}
	srv.sessions[s] = struct{}{}
	srv.wg.Add(1)
	srv.metrics.ClientConns.Add(1)
	srv.metrics.ClientConnsTotal.Add(1)
	return s
}

func (srv *Server) endSession(s *session) {
	srv.keys.unregister(s)
	srv.mu.Lock()
	delete(srv.sessions, s)
	srv.mu.Unlock()
	srv.metrics.ClientConns.Add(-1)
	srv.wg.Done()
}

// overLimit reports whether more clients are connected than allowed.
func (srv *Server) overLimit() bool {
	return srv.metrics.ClientConns.Load() > int64(srv.cfg.MaxClientConns)
}

// Shutdown stops accepting connections and waits for the sessions to end on
// their own. When ctx is done first, the remaining sessions are terminated
// with 57P01 and Shutdown returns once they are gone.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.closing = true
	if srv.ln != nil {
		srv.ln.Close()
	}
	srv.mu.Unlock()
	done := make(chan struct{})
	go func() {
		srv.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	srv.killAll()
	<-done
	return nil
}

// EndOrg ends every session of org with 57P01: the tenant is gone.
func (srv *Server) EndOrg(org string) {
	err := &fatal{code: "57P01", msg: fmt.Sprintf("terminating connection because tenant %q was dropped", org)}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range srv.sessions {
		s.mu.Lock()
		ours := s.route.Org == org
		s.mu.Unlock()
		if ours {
			s.kill(err)
		}
	}
}

// killAll stops the server taking sessions and ends every session it has
// with 57P01.
func (srv *Server) killAll() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.closing = true
	for s := range srv.sessions {
		s.kill(errShutdown)
	}
}
