package engine

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Drift kinds reported by Verify.
const (
	MissingInDatabase = "missing in database"
	MissingInMetadata = "missing in metadata"
	// InvalidIndex is an index that PostgreSQL does not use
	// (pg_index.indisvalid false): a CREATE INDEX CONCURRENTLY that failed
	// or was interrupted, or one still being built.
	InvalidIndex = "invalid index"
	// UnattachedIndex is a valid unique index named as the engine names a
	// unique constraint that no constraint uses: left between its
	// CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... USING INDEX.
	UnattachedIndex = "unattached index"
	// NotValidConstraint is a constraint added NOT VALID and never
	// validated, such as a foreign key left between its two phases.
	NotValidConstraint = "not valid constraint"
	// UnfinishedIntent is an operation that stopped between its phases
	// and that no command or sweep has finished or undone yet.
	UnfinishedIntent = "unfinished intent"
)

// Drift is one difference between the metadata and the live catalog. Kind
// is MissingInDatabase, MissingInMetadata, InvalidIndex, UnattachedIndex,
// NotValidConstraint, UnfinishedIntent, or the aspect of a field that differs: type, primary
// key, nullable, default, unique, references.
type Drift struct {
	Model  string
	Field  string // "" for a whole model
	Kind   string
	Detail string
}

// Verify compares the org's metadata with its live tables and returns every
// difference, by model and field, then the invalid indexes, unattached
// unique indexes and unvalidated constraints of the tables of the org's
// schema, by table, then the org's unfinished intents, oldest first.
func (e *Engine) Verify(ctx context.Context, org string) ([]Drift, error) {
	var drifts []Drift
	err := e.readTx(ctx, org, func(tx pgx.Tx) error {
		schema, _, err := tenantSchema(ctx, tx, org, org)
		if err != nil {
			return err
		}
		models, err := listModels(ctx, tx, org)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname`, schema)
		if err != nil {
			return err
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range tables {
			if !slices.Contains(models, name) {
				drifts = append(drifts, Drift{Model: name, Kind: MissingInMetadata, Detail: "table " + qualified(schema, name) + " has no metadata"})
			}
		}
		for _, name := range models {
			meta, err := readModel(ctx, tx, org, name)
			if err != nil {
				return err
			}
			live, err := readTable(ctx, tx, schema, name)
			if err != nil {
				return err
			}
			drifts = append(drifts, modelDrift(schema, meta, live)...)
		}
		indexes, err := indexDrift(ctx, tx, schema)
		if err != nil {
			return err
		}
		constraints, err := constraintDrift(ctx, tx, schema)
		if err != nil {
			return err
		}
		intents, err := intentDrift(ctx, tx, org)
		if err != nil {
			return err
		}
		drifts = append(drifts, indexes...)
		drifts = append(drifts, constraints...)
		drifts = append(drifts, intents...)
		return nil
	})
	return drifts, err
}

// indexDrift lists the invalid indexes of the tables of schema and the
// valid unique indexes named as the engine names a unique constraint
// (uniqueName) that no primary key, unique or exclusion constraint of
// their table uses. Field is the indexed column of a single-column index.
func indexDrift(ctx context.Context, q querier, schema string) ([]Drift, error) {
	rows, err := q.Query(ctx, `
SELECT t.relname::text, i.relname::text, COALESCE(a.attname::text, ''), x.indisvalid
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] AND x.indnatts = 1
WHERE n.nspname = $1 AND t.relkind IN ('r', 'p')
  AND (NOT x.indisvalid
       OR x.indisunique AND x.indpred IS NULL
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con
                          WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x')))
ORDER BY t.relname, i.relname`, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var drifts []Drift
	for rows.Next() {
		var table, index, column string
		var valid bool
		if err := rows.Scan(&table, &index, &column, &valid); err != nil {
			return nil, err
		}
		switch {
		case !valid:
			drifts = append(drifts, Drift{Model: table, Field: column, Kind: InvalidIndex, Detail: "index " + qualified(schema, index) + " is invalid"})
		case column != "" && index == uniqueName(table, column):
			drifts = append(drifts, Drift{Model: table, Field: column, Kind: UnattachedIndex, Detail: "unique index " + qualified(schema, index) + " is not attached to a constraint"})
		}
	}
	return drifts, rows.Err()
}

// constraintDrift lists the constraints of the tables of schema that are
// NOT VALID. Field is the constrained column of a single-column
// constraint.
func constraintDrift(ctx context.Context, q querier, schema string) ([]Drift, error) {
	rows, err := q.Query(ctx, `
SELECT t.relname::text, con.conname::text, COALESCE(a.attname::text, ''),
       CASE con.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check constraint' ELSE 'constraint' END
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class t ON t.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] AND cardinality(con.conkey) = 1
WHERE n.nspname = $1 AND t.relkind IN ('r', 'p') AND NOT con.convalidated
ORDER BY t.relname, con.conname`, schema)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Drift, error) {
		var name, what string
		d := Drift{Kind: NotValidConstraint}
		err := r.Scan(&d.Model, &name, &d.Field, &what)
		d.Detail = what + " " + ident(name) + " is NOT VALID"
		return d, err
	})
}

// intentDrift lists the org's unfinished intents: the operation, its
// op id, the phase it reached and when it started.
func intentDrift(ctx context.Context, q querier, org string) ([]Drift, error) {
	rows, err := q.Query(ctx, `
SELECT COALESCE(model, ''), COALESCE(field, ''),
       format('%s %s stopped after phase %s of %s%s, started %s', operation, op_id, phase, jsonb_array_length(plan),
              CASE WHEN undoing THEN ' while being undone' ELSE '' END, started_at)
FROM pgmigrate.intents WHERE org = $1 ORDER BY started_at, op_id`, org)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Drift, error) {
		d := Drift{Kind: UnfinishedIntent}
		return d, r.Scan(&d.Model, &d.Field, &d.Detail)
	})
}

// modelDrift compares one model's metadata with its live table (nil if the
// table is gone).
func modelDrift(schema string, meta *Model, live *Table) []Drift {
	if live == nil {
		return []Drift{{Model: meta.Name, Kind: MissingInDatabase, Detail: "table " + qualified(schema, meta.Name) + " does not exist"}}
	}
	var drifts []Drift
	for _, f := range meta.Fields {
		c := live.Column(f.Name)
		if c == nil {
			drifts = append(drifts, Drift{Model: meta.Name, Field: f.Name, Kind: MissingInDatabase, Detail: "column does not exist"})
			continue
		}
		for _, d := range columnDiff(schema, c, f) {
			kind, _, _ := strings.Cut(d, ":")
			drifts = append(drifts, Drift{Model: meta.Name, Field: f.Name, Kind: kind, Detail: d})
		}
	}
	for _, c := range live.Columns {
		if meta.Field(c.Name) == nil {
			drifts = append(drifts, Drift{Model: meta.Name, Field: c.Name, Kind: MissingInMetadata, Detail: "column " + c.Name + " " + c.Type + " has no metadata"})
		}
	}
	return drifts
}
