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
)

// Drift is one difference between the metadata and the live catalog. Kind
// is MissingInDatabase, MissingInMetadata, or the aspect of a field that
// differs: type, primary key, nullable, default, unique, references.
type Drift struct {
	Model  string
	Field  string // "" for a whole model
	Kind   string
	Detail string
}

// Verify compares the org's metadata with its live tables and returns every
// difference, by model and field.
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
		return nil
	})
	return drifts, err
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
