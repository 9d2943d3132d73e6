package intercept

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

// Conversation is one session's extended-protocol state as far as migrate
// commands go. The proxy asks it, message by message, whether to take a
// message (Take: always for Parse, for the rest only while Active), and
// has the handler answer the messages it took (Extended), in order, once a
// Sync or Flush ends them.
//
// Names are tracked at take time, as the messages pass; statements and
// portals are made when the messages are answered, as PostgreSQL does.
type Conversation struct {
	stmtNames   map[string]bool
	portalNames map[string]bool
	stmts       map[string]*Command
	portals     map[string]*portal
	// failed is set by an error until the next Sync: the messages between
	// are skipped, as PostgreSQL skips them.
	failed bool
}

// portal is a bound migrate command and the result formats asked for.
type portal struct {
	cmd     *Command
	call    *Call
	formats []int16
}

// Active reports whether messages other than Parse may belong to a migrate
// statement or portal.
func (c *Conversation) Active() bool { return len(c.stmtNames)+len(c.portalNames) > 0 }

// Take reports whether the proxy takes msg, a whole client message (type,
// length, body), for the conversation; take is the check of a Parse's SQL.
func (c *Conversation) Take(msg []byte, take func(sql []byte) bool) bool {
	if c.stmtNames == nil {
		c.stmtNames, c.portalNames = map[string]bool{}, map[string]bool{}
	}
	body := msg[5:]
	first, rest := cstring(body)
	switch msg[0] {
	case 'P':
		query, _ := cstring(rest)
		return mark(c.stmtNames, first, take(query))
	case 'B':
		stmt, _ := cstring(rest)
		return mark(c.portalNames, first, c.stmtNames[string(stmt)])
	case 'E':
		return c.portalNames[string(first)]
	case 'D', 'C':
		if len(body) == 0 {
			return false
		}
		name, _ := cstring(body[1:])
		names := c.stmtNames
		if body[0] == 'P' {
			names = c.portalNames
		}
		return names[string(name)]
	case 'S':
		clear(c.portalNames)
		c.failed = false
	}
	return false
}

// Failed reports whether an answered message failed since the last Sync:
// the client's messages up to the next Sync are to be skipped.
func (c *Conversation) Failed() bool { return c.failed }

// mark records whether the statement or portal name is a migrate one, and
// returns it; names of ordinary ones are forgotten without allocating.
func mark(names map[string]bool, name []byte, migrate bool) bool {
	if migrate {
		names[string(name)] = true
	} else if names[string(name)] {
		delete(names, string(name))
	}
	return migrate
}

// SQLText returns the SQL text in the body of a Query ('Q') or Parse ('P')
// message.
func SQLText(typ byte, body []byte) []byte {
	if typ == 'P' {
		_, body = cstring(body)
	}
	sql, _ := cstring(body)
	return sql
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) ([]byte, []byte) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+1:]
}

// Extended answers messages the conversation took, in order, up to
// ReadyForQuery (which the caller adds after a Sync).
func (h *Handler) Extended(ctx context.Context, sess Session, c *Conversation, msgs [][]byte) []byte {
	if c.stmts == nil {
		c.stmts, c.portals = map[string]*Command{}, map[string]*portal{}
	}
	var out []byte
	for _, msg := range msgs {
		if msg[0] == 'S' {
			c.failed = false
			clear(c.portals)
			continue
		}
		if c.failed {
			continue
		}
		var err error
		out, err = h.answer(ctx, sess, c, msg, out)
		if err != nil {
			out = errorResponse(out, err)
			c.failed = true
		}
	}
	return out
}

// answer appends the response to one extended-protocol message.
func (h *Handler) answer(ctx context.Context, sess Session, c *Conversation, msg []byte, out []byte) ([]byte, error) {
	body := msg[5:]
	name, rest := cstring(body)
	switch msg[0] {
	case 'P':
		query, _ := cstring(rest)
		cmd, err := h.parse(string(query))
		if err != nil {
			return out, err
		}
		c.stmts[string(name)] = cmd
		return (&pgproto3.ParseComplete{}).Encode(out)
	case 'B':
		var b pgproto3.Bind
		if err := b.Decode(body); err != nil {
			return out, &Error{Code: "08P01", Msg: err.Error()}
		}
		cmd := c.stmts[b.PreparedStatement]
		if cmd == nil {
			return out, &Error{Code: "26000", Msg: "prepared statement \"" + b.PreparedStatement + "\" does not exist"}
		}
		params, err := paramValues(cmd, &b)
		if err != nil {
			return out, err
		}
		call, err := cmd.Bind(params)
		if err != nil {
			return out, err
		}
		c.portals[b.DestinationPortal] = &portal{cmd: cmd, call: call, formats: b.ResultFormatCodes}
		return (&pgproto3.BindComplete{}).Encode(out)
	case 'D':
		return h.describe(c, body, out)
	case 'E':
		p := c.portals[string(name)]
		if p == nil {
			return out, &Error{Code: "34000", Msg: "portal \"" + string(name) + "\" does not exist"}
		}
		rs, err := h.call(ctx, sess, p.cmd, p.call)
		if err != nil {
			return out, err
		}
		return append(out, rs.encode(p.formats, false)...), nil
	case 'C':
		if len(body) > 0 {
			target, _ := cstring(body[1:])
			if body[0] == 'S' {
				delete(c.stmts, string(target))
			} else {
				delete(c.portals, string(target))
			}
		}
		return (&pgproto3.CloseComplete{}).Encode(out)
	}
	return out, nil
}

// paramValues reads a Bind's parameter values as text: text-format values
// as they are, binary ones by their described type (text is its own binary
// form; a boolean is one byte).
func paramValues(cmd *Command, b *pgproto3.Bind) ([]*string, error) {
	types := cmd.ParamTypes()
	params := make([]*string, len(b.Parameters))
	for i, p := range b.Parameters {
		if p == nil {
			continue
		}
		s := string(p)
		if formatOf(b.ParameterFormatCodes, i) == pgtype.BinaryFormatCode && i < len(types) && types[i] == pgtype.BoolOID {
			if len(p) != 1 {
				return nil, &Error{Code: "22P03", Msg: fmt.Sprintf("invalid binary boolean in parameter $%d", i+1)}
			}
			s = strconv.FormatBool(p[0] != 0)
		}
		params[i] = &s
	}
	return params, nil
}

// describe answers Describe of a migrate statement (its parameters, all
// text, and its columns) or portal (its columns in the formats bound).
func (h *Handler) describe(c *Conversation, body []byte, out []byte) ([]byte, error) {
	if len(body) == 0 {
		return out, &Error{Code: "08P01", Msg: "invalid DESCRIBE message"}
	}
	name, _ := cstring(body[1:])
	if body[0] == 'S' {
		cmd := c.stmts[string(name)]
		if cmd == nil {
			return out, &Error{Code: "26000", Msg: "prepared statement \"" + string(name) + "\" does not exist"}
		}
		out, _ = (&pgproto3.ParameterDescription{ParameterOIDs: cmd.ParamTypes()}).Encode(out)
		return (&resultSet{cols: columnsOf(cmd.Proc)}).description(nil).Encode(out)
	}
	p := c.portals[string(name)]
	if p == nil {
		return out, &Error{Code: "34000", Msg: "portal \"" + string(name) + "\" does not exist"}
	}
	return (&resultSet{cols: columnsOf(p.cmd.Proc)}).description(p.formats).Encode(out)
}
