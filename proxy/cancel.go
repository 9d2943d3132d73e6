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
type cancelKeys struct {
	mu       sync.Mutex
	sessions map[uint32]*session
}

// register gives s a fresh random key and returns it.
func (k *cancelKeys) register(s *session) pgproto3.BackendKeyData {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sessions == nil {
		k.sessions = make(map[uint32]*session)
	}
	var b [8]byte
	for {
		rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) &^ (1 << 31)
		if _, taken := k.sessions[pid]; pid != 0 && !taken {
			s.key = pgproto3.BackendKeyData{ProcessID: pid, SecretKey: append([]byte(nil), b[4:]...)}
			k.sessions[pid] = s
			return s.key
		}
	}
}

func (k *cancelKeys) unregister(s *session) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sessions[s.key.ProcessID] == s {
		delete(k.sessions, s.key.ProcessID)
	}
}

// lookup returns the session whose key matches req, or nil.
func (k *cancelKeys) lookup(req *pgproto3.CancelRequest) *session {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sessions[req.ProcessID]
	if s == nil || subtle.ConstantTimeCompare(s.key.SecretKey, req.SecretKey) != 1 {
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
