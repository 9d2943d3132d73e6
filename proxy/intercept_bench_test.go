package proxy

import (
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmigrate/pgmigrate-proxy/intercept"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// clientTraffic is a client's side of ordinary work: extended-protocol
// exchanges (Parse, Bind, Describe, Execute, Sync) and simple Queries,
// none of them a migrate command. It returns the stream and its number of
// messages.
func clientTraffic(b *testing.B) ([]byte, int) {
	b.Helper()
	extended := []string{
		"SELECT i.id, i.number, c.name, sum(l.amount) AS total FROM invoice i JOIN customer c ON c.id = i.customer_id " +
			"LEFT JOIN invoice_line l ON l.invoice_id = i.id WHERE i.created_at > $1 GROUP BY i.id, c.name ORDER BY i.id LIMIT 50",
		"INSERT INTO invoice (customer_id, number, amount, note) VALUES ($1, $2, $3, 'paid; thanks') RETURNING id, created_at",
		"UPDATE invoice SET amount = amount * 1.2, updated_at = now() WHERE id = $1 AND status <> 'void'",
		"/* controller='invoices',action='index',traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' */ " +
			"SELECT invoice.* FROM invoice WHERE invoice.customer_id IN (" + strings.Repeat("$1, ", 50) + "$2) ORDER BY invoice.id",
	}
	simple := []string{
		"BEGIN",
		"DELETE FROM session WHERE expires_at < now()",
		"COMMIT",
		"-- from the pool\nSET application_name = 'billing'",
		"WITH recent AS (SELECT * FROM event WHERE at > now() - interval '1 day') SELECT kind, count(*) FROM recent GROUP BY kind",
	}
	var msgs []pgproto3.FrontendMessage
	for _, sql := range extended {
		msgs = append(msgs,
			&pgproto3.Parse{Query: sql},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("42"), []byte("INV-2024-0042")}, ResultFormatCodes: []int16{1}},
			&pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
	}
	for _, sql := range simple {
		msgs = append(msgs, &pgproto3.Query{String: sql})
	}
	var stream []byte
	for _, m := range msgs {
		var err error
		if stream, err = m.Encode(stream); err != nil {
			b.Fatal(err)
		}
	}
	return stream, len(msgs)
}

// BenchmarkRelayIntercepting is BenchmarkRelay for the client's reader of
// a tenant session with a Migrator: every Query and Parse is checked for a
// migrate command, a role change and (raw_ddl: deny) DDL, and the extended
// protocol's names are followed, on traffic that holds none.
func BenchmarkRelayIntercepting(b *testing.B) {
	h := &intercept.Handler{Rules: func() policy.Rules { return policy.Rules{RawDDL: policy.RawDDLDeny} }}
	rd := benchClientRelay(b, func(rd *reader) {
		rd.track = &tracker{}
		rd.take = func(sql []byte) bool { return h.Take(sql, true) == intercept.Answer }
		rd.conv = &intercept.Conversation{}
		rd.conn = answeredReader{rd.conn, rd.track}
	})
	if rd.stopped() || len(rd.batch) > 0 || rd.conv.Active() {
		b.Fatal("ordinary traffic was taken for migrate commands")
	}
}

// answeredReader has the upstream answer what is owed before each read of
// the client's traffic, as it would between a client's round trips.
type answeredReader struct {
	io.Reader
	track *tracker
}

func (a answeredReader) Read(p []byte) (int, error) {
	for a.track.pending() {
		a.track.reply('Z', []byte{'I'})
	}
	return a.Reader.Read(p)
}

// BenchmarkRelayClientTraffic relays the same client traffic without
// interception, as a session without a Migrator does: the baseline for
// BenchmarkRelayIntercepting.
func BenchmarkRelayClientTraffic(b *testing.B) {
	benchClientRelay(b, func(*reader) {})
}

// benchClientRelay relays clientTraffic per message through a reader that
// setup prepares, and returns the reader.
func benchClientRelay(b *testing.B, setup func(*reader)) *reader {
	stream, perStream := clientTraffic(b)
	return benchRelay(b, stream, perStream, setup)
}

// benchRelay relays stream, which holds perStream messages, over and over,
// b.N messages in all, through a reader that setup prepares, and returns
// the reader.
func benchRelay(b *testing.B, stream []byte, perStream int, setup func(*reader)) *reader {
	src := &loopReader{stream: stream, limit: (b.N/perStream + 1) * len(stream)}
	rd := newReader(src, bufferSize)
	setup(rd)
	var sent atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / perStream))
	b.ResetTimer()
	if err := rd.relay(io.Discard, 1<<20, &sent); !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
	b.StopTimer()
	return rd
}
