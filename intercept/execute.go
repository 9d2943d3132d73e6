package intercept

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
)

// execute runs a bound call on the engine and encodes its rows.
func execute(ctx context.Context, eng *engine.Engine, org string, call *Call) ([]byte, error) {
	switch call.Proc {
	case "describe":
		m, err := eng.Describe(ctx, org, call.Args["model"])
		if err != nil {
			return nil, err
		}
		return describeRows(m), nil
	case "list_models":
		models, err := eng.ListModels(ctx, org)
		if err != nil {
			return nil, err
		}
		rs := resultSet{cols: []column{{"model", pgtype.TextOID}}}
		for _, m := range models {
			rs.add(m)
		}
		return rs.encode(), nil
	case "history":
		entries, err := eng.History(ctx, org, call.Args["model"])
		if err != nil {
			return nil, err
		}
		return historyRows(entries), nil
	case "verify":
		drifts, err := eng.Verify(ctx, org)
		if err != nil {
			return nil, err
		}
		rs := resultSet{cols: []column{{"model", pgtype.TextOID}, {"field", pgtype.TextOID}, {"kind", pgtype.TextOID}, {"detail", pgtype.TextOID}}}
		for _, d := range drifts {
			rs.add(d.Model, d.Field, d.Kind, d.Detail)
		}
		return rs.encode(), nil
	}
	op, err := operation(call)
	if err != nil {
		return nil, err
	}
	run := eng.Apply
	if call.DryRun {
		run = eng.Plan
	}
	res, err := run(ctx, org, op)
	if err != nil {
		return nil, err
	}
	rs := resultSet{cols: []column{
		{"status", pgtype.TextOID}, {"org", pgtype.TextOID}, {"model", pgtype.TextOID}, {"field", pgtype.TextOID},
		{"statements", pgtype.TextOID}, {"attempts", pgtype.Int4OID}, {"duration_ms", pgtype.Int8OID},
	}}
	rs.add(string(res.Status), res.Org, res.Model, res.Field, strings.Join(res.Statements, ";\n"),
		strconv.Itoa(res.Attempts), strconv.FormatInt(res.Duration.Milliseconds(), 10))
	return rs.encode(), nil
}

// operation builds the engine operation of a mutating call.
func operation(call *Call) (engine.Operation, error) {
	a := call.Args
	switch call.Proc {
	case "create_model":
		fields, err := engine.ParseFields([]byte(a["fields"]))
		return &engine.CreateModel{Model: a["model"], Fields: fields}, err
	case "add_field":
		f, err := engine.ParseField([]byte(a["field"]))
		return &engine.AddField{Model: a["model"], Field: f}, err
	case "alter_field":
		f, err := engine.ParseField([]byte(a["field"]))
		return &engine.AlterField{Model: a["model"], Field: f}, err
	case "drop_field":
		return &engine.DropField{Model: a["model"], Field: a["field"]}, nil
	case "drop_model":
		return &engine.DropModel{Model: a["model"]}, nil
	case "rename_field":
		return &engine.RenameField{Model: a["model"], From: a["from"], To: a["to"]}, nil
	case "create_tenant":
		return &engine.CreateTenant{Org: a["org"]}, nil
	case "drop_tenant":
		return &engine.DropTenant{Org: a["org"]}, nil
	}
	return nil, &Error{Code: "42883", Msg: "procedure migrate." + call.Proc + " does not exist"}
}

func describeRows(m *engine.Model) []byte {
	rs := resultSet{cols: []column{
		{"field", pgtype.TextOID}, {"type", pgtype.TextOID}, {"nullable", pgtype.BoolOID}, {"unique", pgtype.BoolOID},
		{"default", pgtype.TextOID}, {"references", pgtype.TextOID}, {"primary_key", pgtype.BoolOID},
	}}
	for _, f := range m.Fields {
		var def, ref *string
		if f.HasDefault() {
			d, _ := f.DefaultSQL()
			def = &d
		}
		if r := f.References; r != nil {
			s := r.Table + "(" + r.Column + ")"
			if r.Schema != "" {
				s = r.Schema + "." + s
			}
			if r.OnDelete != "" {
				s += " ON DELETE " + r.OnDelete
			}
			ref = &s
		}
		rs.addNullable(ptr(f.Name), ptr(f.ColumnType()), ptr(boolText(f.IsNullable())), ptr(boolText(f.Unique)), def, ref, ptr(boolText(f.PrimaryKey)))
	}
	return rs.encode()
}

func historyRows(entries []engine.HistoryEntry) []byte {
	rs := resultSet{cols: []column{
		{"id", pgtype.Int8OID}, {"model", pgtype.TextOID}, {"field", pgtype.TextOID}, {"operation", pgtype.TextOID},
		{"statements", pgtype.TextOID}, {"attempts", pgtype.Int4OID}, {"duration_ms", pgtype.Int8OID},
		{"applied_by", pgtype.TextOID}, {"applied_at", pgtype.TimestamptzOID},
	}}
	for _, h := range entries {
		rs.add(strconv.FormatInt(h.ID, 10), h.Model, h.Field, h.Operation, strings.Join(h.Statements, ";\n"),
			strconv.Itoa(h.Attempts), strconv.FormatInt(h.Duration.Milliseconds(), 10), h.AppliedBy,
			h.AppliedAt.UTC().Format("2006-01-02 15:04:05.999999Z07"))
	}
	return rs.encode()
}

// column is a result column: name and type OID (values go as text).
type column struct {
	name string
	oid  uint32
}

// resultSet collects rows of text values (nil is NULL).
type resultSet struct {
	cols []column
	rows [][][]byte
}

func (rs *resultSet) add(values ...string) {
	row := make([][]byte, len(values))
	for i, v := range values {
		row[i] = []byte(v)
	}
	rs.rows = append(rs.rows, row)
}

func (rs *resultSet) addNullable(values ...*string) {
	row := make([][]byte, len(values))
	for i, v := range values {
		if v != nil {
			row[i] = []byte(*v)
		}
	}
	rs.rows = append(rs.rows, row)
}

// encode renders RowDescription, the DataRows and CommandComplete CALL.
func (rs *resultSet) encode() []byte {
	desc := &pgproto3.RowDescription{}
	for _, c := range rs.cols {
		desc.Fields = append(desc.Fields, pgproto3.FieldDescription{Name: []byte(c.name), DataTypeOID: c.oid, DataTypeSize: -1, TypeModifier: -1})
	}
	out, _ := desc.Encode(nil)
	for _, row := range rs.rows {
		out, _ = (&pgproto3.DataRow{Values: row}).Encode(out)
	}
	out, _ = (&pgproto3.CommandComplete{CommandTag: []byte("CALL")}).Encode(out)
	return out
}

func ptr(s string) *string { return &s }

func boolText(b bool) string {
	if b {
		return "t"
	}
	return "f"
}
