package intercept

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
)

// fanOutWorkers is how many tenants org => '*' migrates at once.
const fanOutWorkers = 8

// fanOut runs a schema change for every tenant, fanOutWorkers at a time on
// each tenant's upstream engine. The client gets a NOTICE as each tenant
// finishes, and one row per tenant at the end, in the tenants' order; a
// tenant that fails is reported (status failed, the error in statements)
// and the others go on.
func (h *Handler) fanOut(ctx context.Context, sess Session, call *Call) (*resultSet, error) {
	tenants := h.Tenants()
	rows := make([][]*string, len(tenants))
	var mu sync.Mutex
	sem := make(chan struct{}, fanOutWorkers)
	var wg sync.WaitGroup
	for i, t := range tenants {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			row, note := h.runTenant(ctx, t.Org, call)
			mu.Lock()
			defer mu.Unlock()
			rows[i] = row
			if sess.Notify != nil {
				msg, _ := (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: note}).Encode(nil)
				sess.Notify(msg)
			}
		}()
	}
	wg.Wait()
	return &resultSet{cols: resultColumns, rows: rows}, nil
}

// runTenant runs call for one tenant and returns its result row and a line
// for the client.
func (h *Handler) runTenant(ctx context.Context, org string, call *Call) ([]*string, string) {
	var rs *resultSet
	route, err := h.Route(ctx, org)
	var eng *engine.Engine
	if err == nil {
		eng, err = h.Engine(route)
	}
	if err == nil {
		rs, err = execute(ctx, eng, route, call, h.Rules())
	}
	if err != nil {
		failed := &resultSet{cols: resultColumns}
		failed.add("failed", org, call.Args["model"], "", sqlState(err)+": "+err.Error(), nil, nil)
		return failed.rows[0], fmt.Sprintf("%s: failed: %v", org, err)
	}
	return rs.rows[0], fmt.Sprintf("%s: %s", org, *rs.rows[0][0])
}
