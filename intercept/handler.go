package intercept

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// allTenants is the org argument that applies a command to every tenant.
const allTenants = "*"

// Handler runs migrate commands for client sessions: it parses and binds
// the command, applies the policy, runs it on the engine of the tenant's
// upstream database and encodes the result as PostgreSQL messages.
type Handler struct {
	// Engine returns the engine of a route's upstream database.
	Engine func(route policy.Route) (*engine.Engine, error)
	// Route finds an org's tenant, for org => '...' in admin sessions.
	Route func(ctx context.Context, org string) (policy.Route, error)
	// Rules returns the policy in force (it changes on reload).
	Rules func() policy.Rules
	// Tenants lists every tenant, for org => '*'.
	Tenants func() []policy.Tenant
	// Upstreams lists the upstreams, where create_tenant places tenants.
	Upstreams func() []*policy.Target
	// Made, when set, hears of each org create_tenant made or found
	// made, which placement had looked for and may have found nowhere.
	Made func(org string)
	// CommandTimeout is the deadline of one command; 0 means none.
	CommandTimeout time.Duration
	// FanoutConcurrency is how many tenants of one upstream org => '*'
	// migrates at once; 0 means 8.
	FanoutConcurrency int
	// TracerProvider makes the command spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// Logger receives a line per audited DDL statement; nil discards them.
	Logger *slog.Logger
	// Observe hears each migrate command that ran (one parsed and bound):
	// its procedure, its status (the engine's applied, unchanged or
	// planned for a schema change of one tenant; ok for a read, a posture
	// check or org => '*'; error when it failed), the SQLSTATE of an error
	// ("" otherwise) and how long it took. Nil means none.
	Observe func(procedure, status, sqlstate string, d time.Duration)

	auditMu      sync.Mutex
	audits       int                    // audit records queued
	auditing     map[string]*auditQueue // by org, while not empty
	auditWriters chan struct{}          // a slot per record being written
}

// Verdict is what the proxy does with a text it sees.
type Verdict uint8

const (
	// Pass: the text goes upstream unchanged.
	Pass Verdict = iota
	// Answer: the proxy takes the message off the wire and the handler
	// answers it (a migrate command, or a statement refused).
	Answer
	// Audit: the text goes upstream, and the handler records it (Audit).
	Audit
)

// Take decides what becomes of the SQL text of a Query or Parse message of
// a session (tenant is true for a tenant session). It runs on the relay's
// hot path: only the cheap recognizer, no parsing, no allocation. Migrate
// commands are answered; in tenant sessions, so are role changes and, with
// raw_ddl: deny, DDL statements (to be refused), while with raw_ddl: audit
// DDL statements pass and are audited.
func (h *Handler) Take(sql []byte, tenant bool) Verdict {
	switch Classify(sql) {
	case Migrate:
		return Answer
	case RoleChange:
		if tenant {
			return Answer
		}
	case DDL:
		if !tenant {
			return Pass
		}
		switch h.Rules().RawDDL {
		case policy.RawDDLDeny:
			return Answer
		case policy.RawDDLAudit:
			return Audit
		}
	}
	return Pass
}

// parse reads a text the proxy took: a migrate command, parsed once, or a
// statement the session may not send, refused.
func (h *Handler) parse(sql string) (*Command, error) {
	switch Classify([]byte(sql)) {
	case RoleChange:
		return nil, &Error{Code: codeInsufficientPrivilege, Msg: "permission denied to change role in a tenant session",
			DetailText: "A tenant session runs as its tenant's role, which the proxy sets when the session starts.",
			HintText:   "Connect as the login role you need instead."}
	case DDL:
		if h.Rules().RawDDL == policy.RawDDLAudit {
			return nil, &Error{Code: codeConfigurationLimitExceeded, Msg: "DDL statement refused: too many audit records are waiting to be written",
				HintText: "Send it again in a moment."}
		}
		return nil, &Error{Code: codeInsufficientPrivilege, Msg: "permission denied: DDL statements are not allowed in tenant sessions (raw_ddl: deny)",
			HintText: "Change the schema with CALL migrate.* commands."}
	}
	return Parse(sql)
}

// Query answers the simple Query sql: the messages up to ReadyForQuery,
// which the caller adds. Every error becomes an ErrorResponse; the session
// stays usable.
func (h *Handler) Query(ctx context.Context, sess Session, sql string) []byte {
	cmd, err := h.parse(sql)
	if err != nil {
		return errorResponse(nil, err)
	}
	if cmd.ParamCount() > 0 {
		return errorResponse(nil, &Error{Code: codeUndefinedParameter, Msg: fmt.Sprintf("there is no parameter $%d", cmd.ParamCount())})
	}
	call, err := cmd.Bind(nil)
	if err != nil {
		return errorResponse(nil, err)
	}
	rs, err := h.call(ctx, sess, cmd, call)
	if err != nil {
		return errorResponse(nil, err)
	}
	return rs.encode(nil, true)
}

// Audit records a DDL statement that a tenant session sends under raw_ddl:
// audit, in the tenant's history and the log, off the caller's goroutine:
// it copies what it keeps (the first MaxAuditText bytes, as UTF-8), queues
// it behind the org's earlier ones and does not block. It returns false
// when the org's queue, or all queues together, are full: the statement
// must then be refused, not sent unrecorded.
func (h *Handler) Audit(ctx context.Context, sess Session, sql []byte) bool {
	org := sess.Route.Org
	h.auditMu.Lock()
	defer h.auditMu.Unlock()
	if h.auditing == nil {
		h.auditing = map[string]*auditQueue{}
		h.auditWriters = make(chan struct{}, auditWriters)
	}
	q := h.auditing[org]
	if q == nil {
		q = &auditQueue{}
	}
	if h.audits >= maxAudits || len(q.pending) >= maxOrgAudits {
		return false
	}
	q.pending = append(q.pending, auditRecord{ctx: context.WithoutCancel(ctx), sess: sess, text: auditText(sql)})
	h.audits++
	if h.auditing[org] == nil {
		h.auditing[org] = q
		go h.drain(org, q)
	}
	return true
}

// auditQueue holds an org's audit records not written yet, oldest first.
type auditQueue struct {
	pending []auditRecord
}

// auditRecord is one audited statement of a session.
type auditRecord struct {
	ctx  context.Context
	sess Session
	text string
}

// drain writes org's audit records in order, at most auditWriters records
// of all orgs at once, and forgets the queue once it is empty.
func (h *Handler) drain(org string, q *auditQueue) {
	for {
		h.auditMu.Lock()
		if len(q.pending) == 0 {
			delete(h.auditing, org)
			h.auditMu.Unlock()
			return
		}
		rec := q.pending[0]
		q.pending = q.pending[1:]
		h.auditMu.Unlock()

		h.auditWriters <- struct{}{}
		ctx, cancel := context.WithTimeout(rec.ctx, auditTimeout)
		h.record(ctx, rec.sess, rec.text)
		cancel()
		<-h.auditWriters

		h.auditMu.Lock()
		h.audits--
		h.auditMu.Unlock()
	}
}

// MaxAuditText is how much of an audited statement is kept, in bytes.
const MaxAuditText = 4 << 10

// Audit records queued, in all and for one org (at most MaxAuditText
// bytes each), and written at once.
const (
	maxAudits    = 4096
	maxOrgAudits = 256
	auditWriters = 4
)

// auditTimeout bounds the writing of one audit record.
const auditTimeout = 30 * time.Second

// auditText is what is kept of an audited statement: its first
// MaxAuditText bytes and its length, as UTF-8.
func auditText(sql []byte) string {
	if len(sql) <= MaxAuditText {
		return strings.ToValidUTF8(string(sql), "\uFFFD")
	}
	return strings.ToValidUTF8(string(sql[:MaxAuditText]), "\uFFFD") + fmt.Sprintf("... (%d bytes)", len(sql))
}

// record writes one audited statement to the log and the tenant's
// history; failures are logged.
func (h *Handler) record(ctx context.Context, sess Session, text string) {
	log := h.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Info("raw DDL", "org", sess.Route.Org, "applied_by", sess.User, "application", sess.Application, "statement", text)
	eng, err := h.Engine(sess.Route)
	if err == nil {
		err = eng.Audit(engine.WithActor(ctx, sess.User, sess.Application), sess.Route.Org, text)
	}
	if err != nil {
		log.Error("recording raw DDL in history failed", "org", sess.Route.Org, "error", err.Error())
	}
}

// call runs a bound command in its span (parented by the command's
// sqlcommenter traceparent, if any) and under the command deadline, and
// returns its rows.
func (h *Handler) call(ctx context.Context, sess Session, cmd *Command, call *Call) (*resultSet, error) {
	start := time.Now()
	if tp := cmd.Traceparent; tp != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
	}
	if h.CommandTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.CommandTimeout)
		defer cancel()
	}
	tracerProvider := h.TracerProvider
	if tracerProvider == nil {
		tracerProvider = otel.GetTracerProvider()
	}
	ctx, span := tracerProvider.Tracer("github.com/pgmigrate/pgmigrate-proxy/intercept").Start(ctx, "CALL migrate."+cmd.Proc,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("db.operation.name", "CALL"), attribute.String("db.stored_procedure.name", "migrate."+cmd.Proc),
			attribute.String("enduser.id", sess.User), attribute.String("pgmigrate.org", sess.Route.Org)))
	defer span.End()
	rs, err := h.run(engine.WithActor(ctx, sess.User, sess.Application), sess, call)
	if err != nil && ctx.Err() != nil {
		err = h.canceled(ctx, err)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	h.observe(call.Proc, rs, err, time.Since(start))
	return rs, err
}

// observe tells Observe, if set, of a command that ran.
func (h *Handler) observe(proc string, rs *resultSet, err error, d time.Duration) {
	if h.Observe == nil {
		return
	}
	status, sqlstate := "ok", ""
	switch {
	case err != nil:
		status, sqlstate = "error", sqlState(err)
	case rs.status != "":
		status = string(rs.status)
	}
	h.Observe(proc, status, sqlstate, d)
}

// canceled is the error of a command whose context ended: its client
// cancelled it or left, or the command deadline passed.
func (h *Handler) canceled(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return &Error{Code: codeQueryCanceled, Msg: fmt.Sprintf("canceling migrate command: it ran past engine.command_timeout (%s)", h.CommandTimeout),
			DetailText: err.Error()}
	}
	return &Error{Code: codeQueryCanceled, Msg: "canceling statement due to user request", DetailText: err.Error()}
}

func (h *Handler) run(ctx context.Context, sess Session, call *Call) (*resultSet, error) {
	target, err := h.authorize(ctx, sess, call)
	if err != nil {
		return nil, err
	}
	switch {
	case target.Org == allTenants:
		return h.fanOut(ctx, sess, call)
	case call.Proc == "list_tenants":
		return h.listTenants(ctx), nil
	}
	eng, err := h.Engine(target)
	if err != nil {
		return nil, err
	}
	if call.Proc == "verify" && target.Org == "" {
		return posture(ctx, eng, h.Rules())
	}
	rs, err := execute(ctx, eng, target, call, h.Rules())
	if err == nil && call.Proc == "create_tenant" && !call.DryRun && h.Made != nil {
		h.Made(target.Org)
	}
	return rs, err
}

// authorize applies the policy and returns the route of the tenant the
// command is for: the session's own, or for an admin session the org it
// names (Org "*" for every tenant; no Org for the posture check), or for
// the tenant commands the session's upstream database with the org made
// or dropped.
func (h *Handler) authorize(ctx context.Context, sess Session, call *Call) (policy.Route, error) {
	if sess.InTransaction {
		return policy.Route{}, &Error{Code: "25001", Msg: "migrate commands cannot run inside a transaction block",
			HintText: "Run it outside BEGIN ... COMMIT: each command is a transaction of its own."}
	}
	rules := h.Rules()
	admin := sess.Route.Org == "" && slices.Contains(rules.Admins, sess.User)
	if procedures[call.Proc].admin && !admin {
		return policy.Route{}, &Error{Code: codeInsufficientPrivilege, Msg: fmt.Sprintf("permission denied for migrate.%s", call.Proc),
			DetailText: fmt.Sprintf("migrate.%s runs only in an admin session on the upstream's database.", call.Proc)}
	}
	target := sess.Route
	var err error
	switch {
	case call.Proc == "create_tenant":
		if target, err = h.placement(ctx, call.Args["org"], call.Args["upstream"]); err != nil {
			return policy.Route{}, err
		}
	case call.Proc == "drop_tenant":
		if target, err = h.tenantOr(ctx, sess.Route, call.Args["org"]); err != nil {
			return policy.Route{}, err
		}
	case sess.Route.Org != "":
		if call.Org != "" && call.Org != sess.Route.Org {
			return policy.Route{}, &Error{Code: codeInsufficientPrivilege, Msg: fmt.Sprintf("permission denied: this session belongs to org %q, not %q", sess.Route.Org, call.Org)}
		}
		if err := h.member(ctx, sess); err != nil {
			return policy.Route{}, err
		}
	case !admin:
		return policy.Route{}, &Error{Code: codeInsufficientPrivilege, Msg: fmt.Sprintf("permission denied: user %q is not an admin", sess.User),
			HintText: "Connect with the org as the database name to act for a tenant."}
	case call.Org == allTenants:
		if !call.Mutating() {
			return policy.Route{}, &Error{Code: codeInsufficientPrivilege, Msg: "org => '*' is for schema changes from an admin session"}
		}
		target.Org = allTenants
	case call.Org != "":
		if target, err = h.tenantOr(ctx, sess.Route, call.Org); err != nil {
			return policy.Route{}, err
		}
	case call.Proc != "verify" && call.Proc != "list_tenants":
		return policy.Route{}, &Error{Code: codeSyntaxError, Msg: fmt.Sprintf("migrate.%s needs org => '...' in an admin session", call.Proc)}
	}
	if !call.Mutating() || call.DryRun {
		return target, nil
	}
	// Who may migrate is asked of the cluster the change is made on.
	eng, err := h.Engine(target)
	if err != nil {
		return policy.Route{}, err
	}
	ok, err := migrator(ctx, eng, rules.Migrators, sess.User)
	if err != nil {
		return policy.Route{}, err
	}
	if !ok {
		return policy.Route{}, &Error{Code: codeInsufficientPrivilege, Msg: fmt.Sprintf("permission denied: user %q may not run migrate.%s", sess.User, call.Proc),
			HintText: "The policy's migrators list says who may."}
	}
	if (call.Proc == "drop_field" || call.Proc == "drop_model") && !rules.AllowDrop {
		return policy.Route{}, &Error{Code: codeInsufficientPrivilege, Msg: fmt.Sprintf("migrate.%s is not allowed by policy (allow_drop: false)", call.Proc)}
	}
	return target, nil
}

// tenantOr returns org's route, or for an org no registry knows (one
// whose registration is lost, say) the route of the admin session's
// database for it.
func (h *Handler) tenantOr(ctx context.Context, admin policy.Route, org string) (policy.Route, error) {
	route, err := h.Route(ctx, org)
	var unknown *policy.UnknownDatabaseError
	if errors.As(err, &unknown) {
		admin.Org = org
		return admin, nil
	}
	return route, err
}

// placement is where create_tenant makes org: where it is registered
// already (42710 if upstream names another), else on the upstream named,
// else on the one with the fewest tenants (the first of those). An org
// named like an upstream's database, where admin sessions connect, would
// take those sessions: 42P04.
func (h *Handler) placement(ctx context.Context, org, upstream string) (policy.Route, error) {
	ups := h.Upstreams()
	for _, up := range ups {
		if up.Database == org {
			return policy.Route{}, &Error{Code: "42P04", Msg: fmt.Sprintf("org %q is the name of the database of upstream %q", org, up.Name),
				DetailText: "Admin sessions connect to that database by its name; a tenant of that name would take them."}
		}
	}
	existing, err := h.Route(ctx, org)
	var unknown *policy.UnknownDatabaseError
	switch {
	case err == nil && upstream != "" && existing.Upstream.Name != upstream:
		return policy.Route{}, &Error{Code: "42710", Msg: fmt.Sprintf("tenant %q already exists on upstream %q", org, existing.Upstream.Name)}
	case err == nil:
		return existing, nil
	case !errors.As(err, &unknown):
		return policy.Route{}, err
	}
	var chosen *policy.Target
	if upstream != "" {
		for _, up := range ups {
			if up.Name == upstream {
				chosen = up
			}
		}
		if chosen == nil {
			return policy.Route{}, &Error{Code: "42704", Msg: fmt.Sprintf("upstream %q does not exist", upstream)}
		}
	} else {
		count := map[string]int{}
		for _, t := range h.Tenants() {
			count[t.Upstream]++
		}
		chosen = ups[0]
		for _, up := range ups[1:] {
			if count[up.Name] < count[chosen.Name] {
				chosen = up
			}
		}
	}
	return policy.Route{Org: org, Upstream: chosen, Database: chosen.Database, Schema: org}, nil
}

// member checks that the user of a tenant session is (still) a member of
// its tenant's role, as PostgreSQL checked when the session started.
func (h *Handler) member(ctx context.Context, sess Session) error {
	eng, err := h.Engine(sess.Route)
	if err != nil {
		return err
	}
	ok, err := eng.HasRole(ctx, sess.User, sess.Route.Org)
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Code: codeInsufficientPrivilege, Msg: fmt.Sprintf("permission denied: user %q is not a member of the role of org %q", sess.User, sess.Route.Org)}
	}
	return nil
}

// migrator reports whether the policy's migrators list names user: "*",
// the user's name, or "role:NAME" of a role the user is a member of.
func migrator(ctx context.Context, eng *engine.Engine, list []string, user string) (bool, error) {
	for _, m := range list {
		role, isRole := strings.CutPrefix(m, "role:")
		switch {
		case m == "*" || m == user:
			return true, nil
		case isRole:
			if ok, err := eng.HasRole(ctx, user, role); ok || err != nil {
				return ok, err
			}
		}
	}
	return false, nil
}

// ErrorResponse is the one place an error becomes an ErrorResponse, for
// the proxy's own errors as for commands'. PostgreSQL's errors keep their
// fields; others give their SQLState and, if they have them, Detail and
// Hint; an error without a SQLSTATE is an internal error (XX000).
func ErrorResponse(severity string, err error) *pgproto3.ErrorResponse {
	er := &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: sqlState(err), Message: strings.TrimSpace(err.Error())}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		er.Message, er.Detail, er.Hint = pgErr.Message, pgErr.Detail, pgErr.Hint
		return er
	}
	var d interface{ Detail() string }
	if errors.As(err, &d) {
		er.Detail = d.Detail()
	}
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		er.Hint = h.Hint()
	}
	return er
}

// errorResponse appends the ERROR of a command that failed to out.
func errorResponse(out []byte, err error) []byte {
	out, _ = ErrorResponse("ERROR", err).Encode(out)
	return out
}

// sqlState is err's SQLSTATE, XX000 if it has none.
func sqlState(err error) string {
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		return coded.SQLState()
	}
	return "XX000"
}
