package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelKeys maps the BackendKeyData the proxy gave each client to that
// client's session, so a CancelRequest reaches only the backend it names.
// A client's key holds its backend's real process id, which clients show
// and compare (pg_backend_pid(), pg_terminate_backend), and a random
// secret of the proxy's own, unique among the sessions, by which the map
// finds the session.
type cancelKeys struct {
	mu       sync.Mutex
	sessions map[uint32]*session
}

// register gives s the key of its upstream's process id and a fresh
// random secret, and returns it.
func (k *cancelKeys) register(s *session) pgproto3.BackendKeyData {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sessions == nil {
		k.sessions = make(map[uint32]*session)
	}
	var b [4]byte
	for {
		rand.Read(b[:])
		secret := binary.BigEndian.Uint32(b[:])
		if _, taken := k.sessions[secret]; !taken {
			s.key = pgproto3.BackendKeyData{ProcessID: s.upstreamKey.ProcessID, SecretKey: append([]byte(nil), b[:]...)}
			k.sessions[secret] = s
			return s.key
		}
	}
}

func (k *cancelKeys) unregister(s *session) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(s.key.SecretKey) != 4 {
		return
	}
	if secret := binary.BigEndian.Uint32(s.key.SecretKey); k.sessions[secret] == s {
		delete(k.sessions, secret)
	}
}

// lookup returns the session whose key matches req, or nil.
func (k *cancelKeys) lookup(req *pgproto3.CancelRequest) *session {
	if len(req.SecretKey) != 4 {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sessions[binary.BigEndian.Uint32(req.SecretKey)]
	if s == nil || s.key.ProcessID != req.ProcessID || subtle.ConstantTimeCompare(s.key.SecretKey, req.SecretKey) != 1 {
		return nil
	}
	return s
}

// cancel forwards req, translated to the upstream backend's own key, to the
// upstream of the session it names. An unknown key does nothing, as in
// PostgreSQL.
func (srv *Server) cancel(ctx context.Context, req *pgproto3.CancelRequest) {
	s := srv.keys.lookup(req)
	if s == nil {
		srv.log.Debug("cancel request with unknown key")
		return
	}
	s.cancelRunning()
	up := s.route.Upstream
	var d net.Dialer
	conn, err := d.DialContext(ctx, up.Network, up.Address)
	if err != nil {
		srv.metrics.UpstreamConnectErrors.Add(1)
		srv.log.Warn("cannot forward cancel request", keyUpstream, up.Name, keyError, err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(srv.cfg.StartupTimeout))
	msg, _ := (&pgproto3.CancelRequest{ProcessID: s.upstreamKey.ProcessID, SecretKey: s.upstreamKey.SecretKey}).Encode(nil)
	if _, err := conn.Write(msg); err != nil {
		srv.log.Warn("cannot forward cancel request", keyUpstream, up.Name, keyError, err)
		return
	}
	// PostgreSQL closes the connection once it has processed the request.
	conn.Read(make([]byte, 1))
}
