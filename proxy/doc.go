// Package proxy is the PostgreSQL wire-protocol front of pgmigrate-proxy.
//
// A Server accepts client connections and gives each one a session with this
// lifecycle:
//
//  1. Startup: SSLRequest (TLS when configured, else 'N'), GSSENCRequest
//     ('N'), CancelRequest (forwarded to the owning session's upstream), then
//     a protocol 3 StartupMessage. Its run-time parameters (in the packet
//     and in options) are checked against an allow-list of connection
//     defaults, and the session is routed (see package policy), both before
//     any upstream contact, so a refused parameter or an unknown org never
//     costs an upstream connection.
//  2. Authentication: the proxy opens the upstream connection with the
//     client's user and allowed parameters, the tenant's database and, last
//     so that they win, the tenant's search_path and role in the
//     StartupMessage (PostgreSQL refuses a user who is not a member of the
//     tenant role), then relays the authentication exchange (cleartext,
//     MD5, SCRAM-SHA-256, with -PLUS mechanisms withdrawn) so PostgreSQL stays
//     the authority on passwords. The upstream's BackendKeyData reaches the
//     client with its real process id but a random secret of the proxy's
//     own, which CancelRequest is checked against.
//  3. Relay: sessions are relayed by epoll loops, one per core, each on a
//     locked OS thread and taking sessions in turn (poll_linux.go); a TLS
//     client's encryption is ended in front of the loop by a bridge over a
//     socket pair (tlsBridge), so that plain and TLS sessions share one
//     relay. A session a loop relays has no goroutine of its own, and
//     holds a 32 KiB buffer for a direction only while bytes of that
//     direction wait in it (borrowed from a pool as it reads, given back
//     once they are written), so an idle plain session costs its
//     bookkeeping only (a TLS session also keeps its bridge's two
//     goroutines, each blocked in a read with a buffer). Where there is no epoll, a goroutine per direction relays
//     (relayPumps), each with a buffer of its own. Both track message
//     boundaries from the 5-byte headers, forwarding runs of bytes
//     untouched and without per-message allocation; the boundaries are
//     what lets the proxy enforce the maximum message size and close a
//     session with a clean ErrorResponse.
//  4. Interception, with a Migrator: each Query and Parse is seen whole and
//     its SQL checked (Migrator.Take, a lexer that allocates nothing); a
//     migrate command or a statement to refuse (a role change in a tenant
//     session; DDL under raw_ddl: deny), and the Bind,
//     Describe, Execute, Close and Sync that refer to it, are taken off the
//     wire and answered by the Migrator once the upstream has answered what
//     came before. A tracker (tracker.go), which the relay alone touches,
//     keeps what the upstream owes as a queue with one expected reply per
//     request, popped by the reply that settles it (a pipeline's error
//     settles everything up to its Sync), with the transaction status as
//     the last ReadyForQuery and the pipeline's BEGIN and COMMIT left it,
//     and the COPY in progress; inside a pipeline a Flush is sent to get
//     the answers held back. The upstream is not read meanwhile, so every
//     answer keeps its place. The answer is computed on a goroutine of
//     its own, never on the relay loop, under a context that a
//     CancelRequest for the session, or the client leaving, cancels; the
//     relay then books it (session.book): a migrate command that failed
//     in a pipeline or a transaction block fails the upstream's too, by
//     a message of the proxy's own whose answers the tracker drops.
//  5. End: the first side to fail ends the session; the client is told why
//     with an ErrorResponse when the stream is at a message boundary.
//
// Serve runs the accept loop until its context ends or Shutdown is called;
// Shutdown stops accepting, waits for sessions to end on their own until its
// context is done, then terminates the rest with 57P01.
package proxy
