// Package intercept recognises migrate commands, CALL migrate.<proc>(...)
// or SELECT * FROM migrate.<proc>(...) [AS alias] (what JDBC's escape
// syntax {call migrate.<proc>(...)} sends), in the SQL text of the Query
// ('Q') and Parse ('P') messages a client sends, and turns them into calls
// of the migration engine's operations.
//
// A message goes through three steps, the first one on every message of
// the relay's hot path and the others only for what the proxy takes:
//
//  1. Classify looks at the start of each statement of the text, without
//     parsing or allocating, and says whether it may be a migrate command,
//     a role change (SET ROLE, SET SESSION AUTHORIZATION, ...), DDL, or
//     something else. Handler.Take turns that into a verdict for the
//     session: answer it (a migrate command; in a tenant session, a role
//     change, and DDL under raw_ddl: deny), pass it and audit it (DDL under
//     raw_ddl: audit), or pass it unchanged.
//  2. Parse, on the goroutine that answers and once per command, parses
//     the text with PostgreSQL's own parser (pg_query) into a Command: the
//     procedure, its arguments as written (literals, NULL or $n parameters,
//     optionally cast, positional or named) and the traceparent of a
//     sqlcommenter comment. It checks the arguments against the procedure's
//     signature. A text the proxy took that holds no migrate command after
//     all is refused too, so nothing can slip past it to PostgreSQL.
//  3. Command.Bind binds the $n parameters (from a Bind message, or none
//     for a simple Query) and checks the values, giving a Call: the
//     arguments by name plus the org, dry_run and confirm options that
//     every procedure takes.
//
// Handler runs what the proxy takes: Query answers a simple Query, Extended
// answers the Parse/Bind/Describe/Execute/Close/Sync of migrate statements
// that a session's Conversation took, in order. Either way the command is
// checked against the policy (tenant membership, migrators, admin-only
// procedures), run on the engine of the tenant's upstream database (or of
// every tenant's, for org => '*') in a span of its own, under the command
// deadline and acting as the session's user, and encoded
// as RowDescription, DataRows and CommandComplete, or as the one
// ErrorResponse that ErrorResponse builds. Handler.Observe, if set, hears
// each command's procedure, status and duration, for metrics.
//
// Parse and Bind report problems as *Error, which carries the SQLSTATE,
// message, DETAIL and HINT of a PostgreSQL ErrorResponse: 42601 for a
// malformed command, 42883 for an unknown procedure, 0A000 for a migrate
// command sharing its query with other statements (or database-qualified,
// or only looking like one, such as a SELECT * FROM migrate.<proc>(...)
// with a WHERE clause or a join), 42P02 for a missing parameter or one
// numbered past the procedure's arguments, 54000 for a text over 1 MiB,
// 22004 for NULL where a value is required and 22P02 for a value that is
// not the boolean or JSON it must be.
package intercept
