package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgmigrate/pgmigrate-proxy/intercept"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// Request codes of untyped startup packets.
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

// The upstream is trusted; its messages are bounded only by the protocol.
const maxUpstreamBody = 1<<30 - 1

// Errors that end a session without anything more to tell the client.
var (
	errCancelServed = errors.New("cancel request served")
	errRelayed      = errors.New("upstream refused the session")
	errClientLeft   = errors.New("client left during authentication")
)

// session is one client connection and, once routed, its upstream
// connection.
type session struct {
	srv     *Server
	started time.Time
	remote  string // the client's address

	client net.Conn // replaced by its TLS wrapper after SSLRequest
	cl     *reader
	// Set during startup; upstream (and client) are let go of once an
	// event loop has their descriptors.
	upstream    net.Conn
	up          *reader
	route       policy.Route
	user        string
	application string // the application_name set at startup
	key         pgproto3.BackendKeyData
	upstreamKey pgproto3.BackendKeyData
	track       tracker
	// notify sends a message to the client while a migrate command runs,
	// by whichever relay is on.
	notify func(msg []byte)
	out    []byte // messages for the client not yet written

	mu       sync.Mutex
	relaying bool
	killed   error
	// stopRelay, set while a poller relays the session, ends that relay.
	stopRelay func()
	// cancelCommand, set while a migrate command runs, cancels it.
	cancelCommand context.CancelFunc
}

// serve runs the session's startup and hands it to a relay. A session an
// event loop relays has no goroutine of its own while it does: the loop
// calls closed when the session ends.
func (s *session) serve(ctx context.Context) {
	s.remote = s.client.RemoteAddr().String()
	deadline := s.started.Add(s.srv.cfg.StartupTimeout)
	s.client.SetDeadline(deadline)
	if err := s.startup(ctx, deadline); err != nil {
		s.reject(err)
		s.giveBack()
		s.closed(nil)
		return
	}
	s.client.SetDeadline(time.Time{})
	s.upstream.SetDeadline(time.Time{})
	s.logger().Info("connection opened")
	s.relay(ctx)
}

// logger is the server's logger with the session's attributes, made
// when the session logs, so that an idle session holds none.
func (s *session) logger() *slog.Logger {
	l := s.srv.log.With(keyRemote, s.remote)
	if s.route.Upstream != nil {
		l = l.With(keyOrg, s.route.Org, keyUser, s.user, keyUpstream, s.route.Upstream.Name)
	}
	return l
}

// closed ends a session: it logs the end of one that was relayed (cause
// is what ended it, nil for an ordinary end), closes what is left open
// and takes the session off the server's books.
func (s *session) closed(cause error) {
	s.mu.Lock()
	relaying, client, upstream := s.relaying, s.client, s.upstream
	s.mu.Unlock()
	if relaying {
		attrs := []any{keyDuration, time.Since(s.started).Milliseconds()}
		if cause != nil {
			attrs = append(attrs, keyError, cause.Error())
		}
		s.logger().Info("connection closed", attrs...)
	}
	if client != nil { // (an event loop has closed what it relayed)
		client.Close()
	}
	if upstream != nil {
		upstream.Close()
	}
	s.srv.endSession(s)
}

// giveBack returns the session's buffers, which nothing reads any more,
// to the pool.
func (s *session) giveBack() {
	for _, rd := range []*reader{s.cl, s.up} {
		if rd != nil {
			rd.r = rd.w
			rd.release()
		}
	}
}

// kill ends the session with err as the reason the client is given.
func (s *session) kill(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.killed == nil {
		s.killed = err
	}
	if s.stopRelay != nil {
		s.stopRelay()
		return
	}
	if s.upstream != nil {
		s.upstream.Close()
	}
	if !s.relaying {
		s.client.Close()
	}
}

func (s *session) killReason() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killed
}

// reject ends a session that failed before it was relaying.
func (s *session) reject(err error) {
	if k := s.killReason(); k != nil {
		err = k
	}
	switch {
	case errors.Is(err, errCancelServed):
		return
	case errors.Is(err, errRelayed), errors.Is(err, errClientLeft):
		s.logger().Info("connection refused", keyError, err.Error())
		return
	}
	var st sqlStater
	if !errors.As(err, &st) {
		s.logger().Info("connection dropped during startup", keyError, err.Error())
		return
	}
	s.logger().Warn("connection refused", keyError, err.Error(), keySQLState, st.SQLState())
	s.client.SetWriteDeadline(time.Now().Add(time.Second))
	s.send(errorResponse(err))
	s.flush()
}

func (s *session) send(msg pgproto3.BackendMessage) {
	s.out, _ = msg.Encode(s.out)
}

func (s *session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	_, err := s.client.Write(s.out)
	s.out = nil
	return err
}

// startup runs everything from the first packet to the first ReadyForQuery.
func (s *session) startup(ctx context.Context, deadline time.Time) error {
	s.cl = &reader{conn: s.client, buf: borrow()}
	sm, err := s.readStartup(ctx)
	if err != nil {
		return err
	}
	user := sm.Parameters["user"]
	if user == "" {
		return errNoUser
	}
	s.user = user
	if s.srv.overLimit() {
		return errTooMany
	}
	settings, org, err := startupSettings(sm.Parameters)
	if err != nil {
		return err
	}
	route, err := s.srv.cfg.Router.Route(ctx, policy.Request{User: user, Database: sm.Parameters["database"], Org: org})
	if err != nil {
		return err
	}
	s.mu.Lock() // (Server.EndOrg reads it)
	s.route = route
	s.mu.Unlock()
	s.negotiate(sm)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := s.dial(dctx, deadline); err != nil {
		s.srv.metrics.UpstreamConnectErrors.Add(1)
		return &fatal{code: "08006", msg: fmt.Sprintf("cannot connect to upstream %q", s.route.Upstream.Name), detail: err.Error()}
	}
	if _, err := s.upstream.Write(s.upstreamStartup(sm.Parameters["user"], settings)); err != nil {
		return err
	}
	return s.authenticate()
}

// readStartup answers SSL and GSSAPI encryption requests and cancel
// requests until a StartupMessage arrives.
func (s *session) readStartup(ctx context.Context) (*pgproto3.StartupMessage, error) {
	for {
		p, err := s.cl.startupPacket()
		if err != nil {
			return nil, err
		}
		code := binary.BigEndian.Uint32(p[4:8])
		switch {
		case code == sslRequestCode:
			if s.cl.buffered() {
				return nil, &protocolError{"received unencrypted data after SSL request"}
			}
			_, isTLS := s.client.(*tls.Conn)
			if s.srv.cfg.TLS == nil || isTLS {
				if _, err := s.client.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := s.client.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(s.client, s.srv.cfg.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.client, s.cl.conn = tc, tc
			s.mu.Unlock()
		case code == gssEncRequestCode:
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case code == cancelRequestCode:
			var req pgproto3.CancelRequest
			if err := req.Decode(p[4:]); err != nil {
				return nil, &protocolError{err.Error()}
			}
			s.srv.cancel(ctx, &req)
			return nil, errCancelServed
		case code>>16 == 3:
			// Any 3.x client is answered in 3.0 (see negotiate).
			binary.BigEndian.PutUint32(p[4:8], pgproto3.ProtocolVersion30)
			sm := &pgproto3.StartupMessage{}
			if err := sm.Decode(p[4:]); err != nil {
				return nil, &protocolError{"invalid startup packet layout: " + err.Error()}
			}
			sm.ProtocolVersion = code
			return sm, nil
		default:
			return nil, &fatal{code: "0A000", msg: fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", code>>16, code&0xffff)}
		}
	}
}

// negotiate tells a client that asked for a newer minor version or for
// protocol extensions that it gets protocol 3.0 and none of them.
func (s *session) negotiate(sm *pgproto3.StartupMessage) {
	var unknown []string
	for k := range sm.Parameters {
		if strings.HasPrefix(k, "_pq_.") {
			unknown = append(unknown, k)
		}
	}
	if sm.ProtocolVersion != pgproto3.ProtocolVersion30 || len(unknown) > 0 {
		s.send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown})
	}
}

// dial connects to the routed upstream, with TLS as its sslmode says.
func (s *session) dial(ctx context.Context, deadline time.Time) error {
	up := s.route.Upstream
	var d net.Dialer
	conn, err := d.DialContext(ctx, up.Network, up.Address)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.upstream = conn
	killed := s.killed
	s.mu.Unlock()
	if killed != nil {
		return killed
	}
	conn.SetDeadline(deadline)
	if up.TLS != nil {
		if conn, err = s.startTLS(ctx, conn); err != nil {
			return err
		}
		s.mu.Lock()
		s.upstream = conn
		s.mu.Unlock()
	}
	s.up = &reader{conn: conn, buf: borrow()}
	return nil
}

func (s *session) startTLS(ctx context.Context, conn net.Conn) (net.Conn, error) {
	up := s.route.Upstream
	req := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), sslRequestCode)
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	var answer [1]byte
	if _, err := conn.Read(answer[:]); err != nil {
		return nil, err
	}
	switch {
	case answer[0] == 'S':
		tc := tls.Client(conn, up.TLS)
		return tc, tc.HandshakeContext(ctx)
	case answer[0] == 'N' && up.TLSOptional:
		return conn, nil
	case answer[0] == 'N':
		return nil, errors.New("server does not support SSL, but SSL was required")
	}
	return nil, fmt.Errorf("unexpected answer %q to SSLRequest", answer[0])
}

// upstreamStartup builds the StartupMessage for the upstream: the client's
// user and settings and the routed database and, for a tenant session, the
// tenant's search_path (in place of any the client asked for) and its role,
// so that PostgreSQL refuses a user who is not a member of the tenant's
// role and the session has the tenant role's privileges only. Parameters
// of the startup packet apply after options, and these are the last
// words.
func (s *session) upstreamStartup(user string, settings []setting) []byte {
	params := map[string]string{"user": user, "database": s.route.Database}
	for _, st := range settings {
		name := strings.ToLower(st.name)
		if name == "search_path" && s.route.Org != "" {
			continue
		}
		if name == "application_name" {
			s.application = st.value
		}
		params[st.name] = st.value
	}
	if s.route.Org != "" {
		params["search_path"] = pgx.Identifier{s.route.Schema}.Sanitize()
		params["role"] = s.route.Org
	}
	msg, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params}).Encode(nil)
	return msg
}

// authenticate relays the authentication exchange and the rest of the
// upstream's startup messages, up to and including ReadyForQuery.
func (s *session) authenticate() error {
	for {
		msg, err := s.up.next(maxUpstreamBody)
		if err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
		switch msg[0] {
		case 'R':
			if err := s.relayAuth(msg); err != nil {
				return err
			}
		case 'K':
			if err := s.upstreamKey.Decode(msg[5:]); err != nil {
				return &protocolError{"upstream: " + err.Error()}
			}
			key := s.srv.keys.register(s)
			s.send(&key)
		case 'Z':
			s.track.status = msg[5]
			s.out = append(s.out, msg...)
			return s.flush()
		case 'E':
			s.out = append(s.out, msg...)
			s.flush()
			return errRelayed
		default: // ParameterStatus, NoticeResponse, NegotiateProtocolVersion
			s.out = append(s.out, msg...)
		}
	}
}

// Authentication request codes.
const (
	authOK           = 0
	authCleartext    = 3
	authMD5          = 5
	authSASL         = 10
	authSASLContinue = 11
	authSASLFinal    = 12
)

// relayAuth passes one authentication request to the client and, if it
// expects one, the client's answer back.
func (s *session) relayAuth(msg []byte) error {
	if len(msg) < 9 {
		return &protocolError{"upstream: authentication message too short"}
	}
	switch binary.BigEndian.Uint32(msg[5:9]) {
	case authOK, authSASLFinal:
		s.out = append(s.out, msg...)
		return nil
	case authCleartext, authMD5, authSASLContinue:
		s.out = append(s.out, msg...)
	case authSASL:
		var m pgproto3.AuthenticationSASL
		if err := m.Decode(msg[5:]); err != nil {
			return &protocolError{"upstream: " + err.Error()}
		}
		m.AuthMechanisms = withoutChannelBinding(m.AuthMechanisms)
		s.send(&m)
	default:
		return &fatal{code: "28000", msg: fmt.Sprintf("authentication method %d requested by the upstream is not supported by pgmigrate-proxy", binary.BigEndian.Uint32(msg[5:9]))}
	}
	if err := s.flush(); err != nil {
		return err
	}
	answer, err := s.cl.next(s.srv.cfg.MaxMessageSize)
	if err != nil {
		return err
	}
	switch answer[0] {
	case 'p':
		_, err = s.upstream.Write(answer)
		return err
	case 'X':
		return errClientLeft
	}
	return &protocolError{fmt.Sprintf("expected password response, got message type %q", answer[0])}
}

// withoutChannelBinding drops the -PLUS SASL mechanisms: the proxy ends the
// client's TLS itself, so it cannot bind the upstream's channel.
func withoutChannelBinding(mechs []string) []string {
	var out []string
	for _, m := range mechs {
		if !strings.HasSuffix(m, "-PLUS") {
			out = append(out, m)
		}
	}
	return out
}

// relay hands the session to an event loop, or where there is none runs
// the two pumps until one side ends; closed follows either way.
func (s *session) relay(ctx context.Context) {
	s.mu.Lock()
	s.relaying = true
	killed := s.killed
	s.mu.Unlock()
	if killed != nil {
		s.closed(killed)
		return
	}
	if m := s.srv.cfg.Migrator; m != nil {
		s.cl.track, s.up.track = &s.track, &s.track
		s.cl.take = s.taker(ctx, m)
		s.cl.conv = &intercept.Conversation{}
	}
	if pl := s.srv.poller(); pl != nil && pl.relay(ctx, s) {
		return
	}
	cause := s.relayPumps(ctx)
	s.giveBack()
	s.closed(cause)
}

// taker returns the check the client's reader makes of each Query's and
// Parse's SQL text: whether to take it off the wire. A DDL statement to
// audit passes once the Migrator has it to record, and is taken (to be
// refused) when it cannot.
func (s *session) taker(ctx context.Context, m Migrator) func(sql []byte) bool {
	return func(sql []byte) bool { return s.decide(ctx, m.Take(sql, s.route.Org != ""), sql) }
}

// decide turns the Migrator's verdict on sql into whether to take it; it
// runs on the relay, which alone reads the session's state.
func (s *session) decide(ctx context.Context, v intercept.Verdict, sql []byte) bool {
	switch v {
	case intercept.Answer:
		return true
	case intercept.Audit:
		return !s.srv.cfg.Migrator.Audit(ctx, s.intercepted(), sql)
	}
	return false
}

// intercepted is what the handler of migrate commands knows of the
// session.
func (s *session) intercepted() intercept.Session {
	return intercept.Session{User: s.user, Application: s.application, Route: s.route,
		InTransaction: s.track.status != 'I', Notify: s.notify}
}

// command is a batch of messages taken off the wire and being answered.
// The relay makes it (newCommand) and books its answer (book); run, which
// may take long, runs between the two on a goroutine of its own.
type command struct {
	batch [][]byte
	sess  intercept.Session
	// skipping: the upstream failed earlier in this pipeline and ignores
	// all but the next Sync.
	skipping bool
	out      []byte // the answer, ReadyForQuery excepted
	failed   bool   // a migrate message of the batch failed
}

func (s *session) newCommand(batch [][]byte) *command {
	return &command{batch: batch, sess: s.intercepted(), skipping: s.track.skipping}
}

func (c *command) last() byte { return c.batch[len(c.batch)-1][0] }

// run answers the command under a context of its own, which a
// CancelRequest for the session (or cancel, when the relay sees the
// client leave) cancels. While the upstream skips to Sync, so do the
// migrate messages, a Query included, which gets no answer.
func (s *session) run(ctx context.Context, c *command) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.cancelCommand = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cancelCommand = nil
		s.mu.Unlock()
	}()
	switch {
	case c.skipping:
	case c.last() == 'Q':
		q := c.batch[len(c.batch)-1]
		c.out = s.srv.cfg.Migrator.Query(ctx, c.sess, string(q[5:len(q)-1]))
	default:
		c.out = s.srv.cfg.Migrator.Extended(ctx, c.sess, s.cl.conv, c.batch)
		c.failed = s.cl.conv.Failed()
	}
}

// cancelRunning cancels the migrate command the session is running, if
// any.
func (s *session) cancelRunning() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelCommand != nil {
		s.cancelCommand()
	}
}

// book settles a command that has run: it returns what the client gets
// (ReadyForQuery added after a Query or a Sync) and abort, a message of
// the proxy's own that the upstream must get before anything more of the
// client's. A migrate command that fails aborts the transaction it is in,
// as PostgreSQL's own failure would:
//   - in a pipeline whose Sync goes upstream after statements that went
//     there before it (an implicit transaction), or inside a transaction
//     block, by a Parse that fails (abortPipeline), the client's messages
//     being dropped up to its Sync;
//   - inside a transaction block, when the proxy answers the Query or Sync
//     itself, by a Query that fails (abortTransaction), the client being
//     told the transaction failed.
//
// The tracker drops the upstream's answers to either.
func (s *session) book(c *command) (resp, abort []byte) {
	last := c.last()
	if c.skipping && last == 'Q' {
		return nil, nil
	}
	t := &s.track
	if !c.skipping && last != 'Q' {
		s.cl.discard = last != 'S' && c.failed
		if s.cl.discard && (t.forwarded || c.sess.InTransaction) {
			abort = t.inject(abortPipeline)
		}
	}
	resp = c.out
	if last == 'Q' || last == 'S' {
		status := t.status
		if abort == nil && c.sess.InTransaction && hasError(resp) {
			abort, status = t.inject(abortTransaction), 'E'
		}
		resp, _ = (&pgproto3.ReadyForQuery{TxStatus: status}).Encode(resp)
	}
	return resp, abort
}

// abortTransaction is a Query that fails (a syntax error), which fails the
// upstream's transaction block.
var abortTransaction, _ = (&pgproto3.Query{String: "pgmigrate-proxy: a migrate command failed in this transaction"}).Encode(nil)

// hasError reports whether the messages of out include an ErrorResponse.
func hasError(out []byte) bool {
	for len(out) >= 5 {
		if out[0] == 'E' {
			return true
		}
		out = out[min(len(out), 1+int(binary.BigEndian.Uint32(out[1:5]))):]
	}
	return false
}

// abortPipeline is a Parse that fails (a syntax error), which puts the
// upstream in the state an error leaves a pipeline in: skipping to Sync,
// where the implicit transaction is rolled back (or the transaction
// block marked failed).
var abortPipeline, _ = (&pgproto3.Parse{Query: "pgmigrate-proxy: a migrate command failed in this pipeline"}).Encode(nil)

// serveTaken answers taken messages for the pumps, once the upstream has
// answered everything sent before them (or its pump has ended: upstreamDone
// is closed then).
func (s *session) serveTaken(ctx context.Context, toClient io.Writer, batch [][]byte, upstreamDone <-chan struct{}) error {
	t := &s.track
	t.mu.Lock()
	if t.unflushed {
		flush := t.inject(flushMessage)
		t.mu.Unlock()
		// (Not under the lock: the upstream's pump may need it to read
		// what makes room to write.)
		if _, err := s.upstream.Write(flush); err != nil {
			return writeError{err}
		}
		t.mu.Lock()
	}
	for t.pending() || t.unwritten {
		if t.copying {
			t.mu.Unlock()
			// A COPY FROM STDIN sent before them has started, and they
			// came before its end: they are the copy's, untaken (see
			// pollRelay.passToCopy).
			for _, m := range batch {
				if _, err := s.upstream.Write(m); err != nil {
					return writeError{err}
				}
			}
			return nil
		}
		t.mu.Unlock()
		select {
		case <-t.answered:
		case <-upstreamDone:
			if err := s.killReason(); err != nil {
				return err
			}
			return errUpstreamLost
		}
		t.mu.Lock()
	}
	c := s.newCommand(batch)
	t.mu.Unlock()
	s.run(ctx, c)
	t.mu.Lock()
	resp, abort := s.book(c)
	t.mu.Unlock()
	if _, err := toClient.Write(resp); err != nil {
		return err
	}
	if abort != nil {
		if _, err := s.upstream.Write(abort); err != nil {
			return writeError{err}
		}
	}
	return nil
}

// lockedWriter writes under a mutex.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// relayPumps relays with a goroutine for each direction.
func (s *session) relayPumps(ctx context.Context) error {
	m := s.srv.metrics
	var toClient io.Writer = s.client
	upstreamDone := make(chan struct{})
	if s.cl.take != nil {
		// The upstream's pump and the answers of migrate commands both
		// write to the client.
		locked := lockedWriter{&sync.Mutex{}, s.client}
		toClient = locked
		s.track.answered = make(chan struct{}, 1)
		s.cl.onAnswer = func(batch [][]byte) error { return s.serveTaken(ctx, locked, batch, upstreamDone) }
		s.notify = func(msg []byte) { locked.Write(msg) }
	}
	fromClient := make(chan error, 1)
	fromUpstream := make(chan error, 1)
	go func() { fromClient <- s.cl.relay(s.upstream, s.srv.cfg.MaxMessageSize, &m.BytesFromClients) }()
	go func() {
		fromUpstream <- s.up.relay(toClient, maxUpstreamBody, &m.BytesFromUpstreams)
		close(upstreamDone)
	}()
	var clientErr, upstreamErr error
	select {
	case clientErr = <-fromClient:
		s.upstream.Close()
		upstreamErr = <-fromUpstream
	case upstreamErr = <-fromUpstream:
	}
	cause := s.endCause(clientErr, upstreamErr)
	if msg := s.farewell(cause); msg != nil {
		s.client.SetWriteDeadline(time.Now().Add(time.Second))
		s.client.Write(msg)
	}
	s.client.Close()
	s.upstream.Close()
	if clientErr == nil {
		<-fromClient
	}
	return cause
}

// endCause decides what ended a relaying session, given the error of the
// pump that ended first (and, if the client's ended first, the upstream's
// after it). It returns nil for an ordinary end.
func (s *session) endCause(clientErr, upstreamErr error) error {
	if k := s.killReason(); k != nil {
		return k
	}
	var we writeError
	if clientErr != nil {
		var st sqlStater
		switch {
		case errors.As(clientErr, &st):
			return clientErr
		case errors.As(clientErr, &we):
			return errUpstreamLost
		}
		return nil
	}
	if errors.As(upstreamErr, &we) || s.cl.terminated.Load() {
		return nil
	}
	return errUpstreamLost
}

// farewell is the ErrorResponse that tells the client why its session
// ended, or nil when there is nothing to tell or the stream from the
// upstream stopped inside a message (or after an error of its own).
func (s *session) farewell(cause error) []byte {
	if cause == nil || !s.up.atBoundary() || s.up.lastType == 'E' {
		return nil
	}
	msg, _ := errorResponse(cause).Encode(nil)
	return msg
}
