package intercept

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

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
// the command, applies the policy, runs it on the engine of the session's
// upstream and encodes the result as PostgreSQL messages.
type Handler struct {
	// Engines by upstream name.
	Engines map[string]*engine.Engine
	// Rules returns the policy in force (it changes on reload).
	Rules func() policy.Rules
	// Tenants lists every tenant, for org => '*'.
	Tenants func() []policy.Tenant
	// TracerProvider makes the command spans; nil means the global one.
	TracerProvider trace.TracerProvider
}

// Take reports whether sql is a migrate command for the handler: the cheap
// check first, which is all that ordinary queries cost, then a parse to
// tell a real command from text that only starts like one.
func (h *Handler) Take(sql []byte) bool {
	if !Maybe(sql) {
		return false
	}
	_, err := Parse(string(sql))
	return !errors.Is(err, ErrNotCommand)
}

// Query answers the simple Query sql: the messages up to ReadyForQuery,
// which the caller adds. Every error becomes an ErrorResponse; the session
// stays usable.
func (h *Handler) Query(ctx context.Context, sess Session, sql string) []byte {
	cmd, err := Parse(sql)
	if err != nil {
		return errorResponse(nil, err)
	}
	if cmd.ParamCount() > 0 {
		return errorResponse(nil, &Error{Code: "42P02", Msg: fmt.Sprintf("there is no parameter $%d", cmd.ParamCount())})
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

// call runs a bound command in its span (parented by the command's
// sqlcommenter traceparent, if any) and returns its rows.
func (h *Handler) call(ctx context.Context, sess Session, cmd *Command, call *Call) (*resultSet, error) {
	if tp := cmd.Traceparent; tp != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
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
	rs, err := h.run(ctx, sess, call)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return rs, err
}

func (h *Handler) run(ctx context.Context, sess Session, call *Call) (*resultSet, error) {
	eng, err := h.engine(sess.Route.Upstream.Name)
	if err != nil {
		return nil, err
	}
	org, err := h.authorize(ctx, sess, eng, call)
	if err != nil {
		return nil, err
	}
	if org == allTenants {
		return h.fanOut(ctx, sess, call)
	}
	return execute(ctx, eng, org, call)
}

func (h *Handler) engine(upstream string) (*engine.Engine, error) {
	eng := h.Engines[upstream]
	if eng == nil {
		return nil, &Error{Code: "58000", Msg: fmt.Sprintf("no engine for upstream %q", upstream)}
	}
	return eng, nil
}

// authorize applies the policy and returns the org the command is for.
func (h *Handler) authorize(ctx context.Context, sess Session, eng *engine.Engine, call *Call) (string, error) {
	if sess.InTransaction {
		return "", &Error{Code: "25001", Msg: "migrate commands cannot run inside a transaction block",
			HintText: "Run it outside BEGIN ... COMMIT: each command is a transaction of its own."}
	}
	rules := h.Rules()
	tenantOp := call.Proc == "create_tenant" || call.Proc == "drop_tenant"
	admin := sess.Route.Org == "" && slices.Contains(rules.Admins, sess.User)
	if tenantOp && !admin {
		return "", &Error{Code: "42501", Msg: fmt.Sprintf("permission denied for migrate.%s", call.Proc),
			DetailText: "Tenants are created and dropped from an admin session on the upstream's database."}
	}
	org := call.Org
	switch {
	case tenantOp:
		org = call.Args["org"]
	case sess.Route.Org == "" && org == "":
		return "", &Error{Code: "42601", Msg: fmt.Sprintf("migrate.%s needs org => '...' in an admin session", call.Proc)}
	case org == allTenants && (!admin || !call.Mutating()):
		return "", &Error{Code: "42501", Msg: "org => '*' is for schema changes from an admin session"}
	case sess.Route.Org == "":
	case org != "" && org != sess.Route.Org:
		return "", &Error{Code: "42501", Msg: fmt.Sprintf("permission denied: this session belongs to org %q, not %q", sess.Route.Org, org)}
	default:
		org = sess.Route.Org
	}
	if !call.Mutating() || call.DryRun {
		return org, nil
	}
	ok, err := migrator(ctx, eng, rules.Migrators, sess.User)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", &Error{Code: "42501", Msg: fmt.Sprintf("permission denied: user %q may not run migrate.%s", sess.User, call.Proc),
			HintText: "The policy's migrators list says who may."}
	}
	if (call.Proc == "drop_field" || call.Proc == "drop_model") && !rules.AllowDrop {
		return "", &Error{Code: "42501", Msg: fmt.Sprintf("migrate.%s is not allowed by policy (allow_drop: false)", call.Proc)}
	}
	return org, nil
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
