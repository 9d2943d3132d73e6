package intercept

import (
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// column is a result column: its name and type.
type column struct {
	name string
	oid  uint32
}

// The result columns of each procedure; every mutating one returns
// resultColumns.
var (
	resultColumns = []column{
		{"status", pgtype.TextOID}, {"org", pgtype.TextOID}, {"model", pgtype.TextOID}, {"field", pgtype.TextOID},
		{"statements", pgtype.TextOID}, {"attempts", pgtype.Int4OID}, {"duration_ms", pgtype.Int8OID},
	}
	readColumns = map[string][]column{
		"describe": {
			{"field", pgtype.TextOID}, {"type", pgtype.TextOID}, {"nullable", pgtype.BoolOID}, {"unique", pgtype.BoolOID},
			{"default", pgtype.TextOID}, {"references", pgtype.TextOID}, {"primary_key", pgtype.BoolOID},
		},
		"list_models": {{"model", pgtype.TextOID}},
		"history": {
			{"id", pgtype.Int8OID}, {"model", pgtype.TextOID}, {"field", pgtype.TextOID}, {"operation", pgtype.TextOID},
			{"statements", pgtype.TextOID}, {"attempts", pgtype.Int4OID}, {"duration_ms", pgtype.Int8OID},
			{"applied_by", pgtype.TextOID}, {"applied_at", pgtype.TimestamptzOID},
		},
		"verify":        {{"model", pgtype.TextOID}, {"field", pgtype.TextOID}, {"kind", pgtype.TextOID}, {"detail", pgtype.TextOID}},
		"create_tenant": append(slices.Clip(resultColumns), column{"login", pgtype.TextOID}, column{"password", pgtype.TextOID}),
		"list_tenants": {
			{"org", pgtype.TextOID}, {"upstream", pgtype.TextOID}, {"database", pgtype.TextOID}, {"schema", pgtype.TextOID},
			{"models", pgtype.Int4OID}, {"last_change", pgtype.TimestamptzOID}, {"unfinished_intents", pgtype.Int4OID},
			{"drift", pgtype.Int4OID},
		},
	}
)

// columnsOf returns the result columns of a procedure.
func columnsOf(proc string) []column {
	if cols, ok := readColumns[proc]; ok {
		return cols
	}
	return resultColumns
}

// execute runs a bound call for the routed tenant on its engine and
// returns its rows.
func execute(ctx context.Context, eng *engine.Engine, route policy.Route, call *Call, rules policy.Rules) (*resultSet, error) {
	org := route.Org
	rs := &resultSet{cols: columnsOf(call.Proc)}
	switch call.Proc {
	case "describe":
		m, err := eng.Describe(ctx, org, call.Args["model"])
		if err != nil {
			return nil, err
		}
		for _, f := range m.Fields {
			rs.add(f.Name, f.ColumnType(), boolText(f.IsNullable()), boolText(f.Unique), defaultText(f), referenceText(f.References), boolText(f.PrimaryKey))
		}
		return rs, nil
	case "list_models":
		models, err := eng.ListModels(ctx, org)
		for _, m := range models {
			rs.add(m)
		}
		return rs, err
	case "history":
		entries, err := eng.History(ctx, org, call.Args["model"])
		for _, h := range entries {
			rs.add(strconv.FormatInt(h.ID, 10), h.Model, h.Field, h.Operation, strings.Join(h.Statements, ";\n"),
				strconv.Itoa(h.Attempts), strconv.FormatInt(h.Duration.Milliseconds(), 10), h.AppliedBy,
				h.AppliedAt.UTC().Format(timestampText))
		}
		return rs, err
	case "verify":
		drifts, err := eng.Verify(ctx, org)
		for _, d := range drifts {
			rs.add(d.Model, d.Field, d.Kind, d.Detail)
		}
		return rs, err
	}
	op, err := operation(call, rules)
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
	row := []any{string(res.Status), res.Org, res.Model, res.Field, strings.Join(res.Statements, ";\n"),
		strconv.Itoa(res.Attempts), strconv.FormatInt(res.Duration.Milliseconds(), 10)}
	if call.Proc == "create_tenant" {
		row = append(row, nullIfEmpty(res.Login), nullIfEmpty(res.Password))
	}
	rs.add(row...)
	rs.status = res.Status
	return rs, nil
}

// posture runs the posture check of an upstream database for an admin
// session's verify(): one row per finding, the role or schema as field.
func posture(ctx context.Context, eng *engine.Engine, rules policy.Rules) (*resultSet, error) {
	findings, err := eng.Posture(ctx, rules.RawDDL == policy.RawDDLDeny)
	rs := &resultSet{cols: columnsOf("verify")}
	for _, f := range findings {
		rs.add(nil, f.Object, f.Kind, f.Detail)
	}
	return rs, err
}

// nullIfEmpty is s, or NULL when it is empty.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// operation builds the engine operation of a mutating call.
func operation(call *Call, rules policy.Rules) (engine.Operation, error) {
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
	case "adopt_model":
		return &engine.AdoptModel{Model: a["model"]}, nil
	case "create_tenant":
		return &engine.CreateTenant{Org: a["org"], Login: a["login"] == "true", NoCreate: rules.RawDDL == policy.RawDDLDeny}, nil
	case "drop_tenant":
		return &engine.DropTenant{Org: a["org"]}, nil
	}
	return nil, &Error{Code: "42883", Msg: "procedure migrate." + call.Proc + " does not exist"}
}

func defaultText(f engine.FieldSpec) any {
	if !f.HasDefault() {
		return nil
	}
	d, _ := f.DefaultSQL()
	return d
}

func referenceText(r *engine.Reference) any {
	if r == nil {
		return nil
	}
	s := r.Table + "(" + r.Column + ")"
	if r.Schema != "" {
		s = r.Schema + "." + s
	}
	if r.OnDelete != "" {
		s += " ON DELETE " + r.OnDelete
	}
	return s
}

func boolText(b bool) string {
	if b {
		return "t"
	}
	return "f"
}

// timestampText is how applied_at is written in text format.
const timestampText = "2006-01-02 15:04:05.999999Z07"

// resultSet is rows of values in text form (nil is NULL).
type resultSet struct {
	cols []column
	rows [][]*string
	// status is the engine's status of a schema change of one tenant;
	// empty for the other commands.
	status engine.Status
}

// add appends a row; each value is a string, a *string, or nil for NULL.
func (rs *resultSet) add(values ...any) {
	row := make([]*string, len(values))
	for i, v := range values {
		switch v := v.(type) {
		case string:
			row[i] = &v
		case *string:
			row[i] = v
		}
	}
	rs.rows = append(rs.rows, row)
}

// description is the RowDescription for the result formats asked (as in
// Bind: none means text, one applies to all).
func (rs *resultSet) description(formats []int16) *pgproto3.RowDescription {
	desc := &pgproto3.RowDescription{}
	for i, c := range rs.cols {
		desc.Fields = append(desc.Fields, pgproto3.FieldDescription{
			Name: []byte(c.name), DataTypeOID: c.oid, DataTypeSize: -1, TypeModifier: -1, Format: formatOf(formats, i),
		})
	}
	return desc
}

// encode renders the rows (after a RowDescription if describe) and
// CommandComplete CALL, each column in the format asked.
func (rs *resultSet) encode(formats []int16, describe bool) []byte {
	var out []byte
	if describe {
		out, _ = rs.description(formats).Encode(out)
	}
	for _, row := range rs.rows {
		values := make([][]byte, len(row))
		for i, v := range row {
			if v != nil {
				values[i] = encodeValue(rs.cols[i].oid, *v, formatOf(formats, i))
			}
		}
		out, _ = (&pgproto3.DataRow{Values: values}).Encode(out)
	}
	out, _ = (&pgproto3.CommandComplete{CommandTag: []byte("CALL")}).Encode(out)
	return out
}

func formatOf(formats []int16, i int) int16 {
	switch len(formats) {
	case 0:
		return pgtype.TextFormatCode
	case 1:
		return formats[0]
	}
	if i < len(formats) {
		return formats[i]
	}
	return pgtype.TextFormatCode
}

// encodeValue renders a text value in the wire format asked.
func encodeValue(oid uint32, text string, format int16) []byte {
	if format != pgtype.BinaryFormatCode {
		return []byte(text)
	}
	switch oid {
	case pgtype.Int4OID:
		n, _ := strconv.ParseInt(text, 10, 32)
		return binary.BigEndian.AppendUint32(nil, uint32(n))
	case pgtype.Int8OID:
		n, _ := strconv.ParseInt(text, 10, 64)
		return binary.BigEndian.AppendUint64(nil, uint64(n))
	case pgtype.BoolOID:
		if text == "t" {
			return []byte{1}
		}
		return []byte{0}
	case pgtype.TimestamptzOID:
		t, _ := time.Parse(timestampText, text)
		epoch := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		return binary.BigEndian.AppendUint64(nil, uint64(t.Sub(epoch).Microseconds()))
	}
	return []byte(text)
}
