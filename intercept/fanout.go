package intercept

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// fanOut runs a schema change for every tenant, FanoutConcurrency at a
// time on each upstream, on each tenant's upstream engine. The client gets
// a NOTICE as each tenant finishes, and one row per tenant at the end, in
// the tenants' order; a tenant that fails is reported (status failed, the
// error in statements) and the others go on.
func (h *Handler) fanOut(ctx context.Context, sess Session, call *Call) (*resultSet, error) {
	tenants := h.Tenants()
	rows := make([][]*string, len(tenants))
	var mu sync.Mutex
	h.eachTenant(tenants, func(i int) {
		h.fanOutOne(ctx, sess, call, tenants[i].Org, &mu, &rows[i])
	})
	return &resultSet{cols: resultColumns, rows: rows}, nil
}

// eachTenant calls do with the index of each of tenants, FanoutConcurrency
// at a time on each upstream: a queue per upstream, worked by workers of
// its own, so that one slow upstream does not hold up the others.
func (h *Handler) eachTenant(tenants []policy.Tenant, do func(i int)) {
	workers := h.FanoutConcurrency
	if workers == 0 {
		workers = 8
	}
	queues := map[string]chan int{}
	for i, t := range tenants {
		if queues[t.Upstream] == nil {
			queues[t.Upstream] = make(chan int, len(tenants))
		}
		queues[t.Upstream] <- i
	}
	var wg sync.WaitGroup
	for _, q := range queues {
		close(q)
		for range workers {
			wg.Go(func() {
				for i := range q {
					do(i)
				}
			})
		}
	}
	wg.Wait()
}

// listTenants answers list_tenants: a row per tenant, from its catalog.
// A tenant whose catalog cannot be read has NULLs where the figures go.
func (h *Handler) listTenants(ctx context.Context) *resultSet {
	tenants := h.Tenants()
	rs := &resultSet{cols: columnsOf("list_tenants"), rows: make([][]*string, len(tenants))}
	h.eachTenant(tenants, func(i int) {
		t := tenants[i]
		row := &resultSet{}
		var s engine.TenantSummary
		var drifts []engine.Drift
		route, err := h.Route(ctx, t.Org)
		var eng *engine.Engine
		if err == nil {
			eng, err = h.Engine(route)
		}
		if err == nil {
			s, err = eng.Summary(ctx, t.Org)
		}
		if err == nil {
			drifts, err = eng.Verify(ctx, t.Org)
		}
		if err != nil {
			row.add(t.Org, t.Upstream, t.Database, t.Schema, nil, nil, nil, nil)
		} else {
			drift := 0
			for _, d := range drifts {
				if d.Kind != engine.UnfinishedIntent {
					drift++
				}
			}
			var last any
			if !s.LastChange.IsZero() {
				last = s.LastChange.UTC().Format(timestampText)
			}
			row.add(t.Org, t.Upstream, t.Database, t.Schema, strconv.Itoa(s.Models), last, strconv.Itoa(s.Unfinished), strconv.Itoa(drift))
		}
		rs.rows[i] = row.rows[0]
	})
	return rs
}

// fanOutOne runs call for one tenant of a fan-out, stores its row and
// tells the client.
func (h *Handler) fanOutOne(ctx context.Context, sess Session, call *Call, org string, mu *sync.Mutex, row *[]*string) {
	r, note := h.runTenant(ctx, org, call)
	mu.Lock()
	defer mu.Unlock()
	*row = r
	if sess.Notify != nil {
		msg, _ := (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: note}).Encode(nil)
		sess.Notify(msg)
	}
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
