package e2e

import "testing"

// TestClientSeesBackendPID: the process id a client is given is its
// backend's, so pg_backend_pid() agrees with it and pg_terminate_backend
// of it ends the session, and cancelling with the key the client was
// given (the backend's id, the proxy's secret) works.
func TestClientSeesBackendPID(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := p.connect(t, "postgres", "", "acme")
	reported := conn.PgConn().PID()
	if actual := backendPID(t, conn); uint32(actual) != reported {
		t.Fatalf("reported pid %d, pg_backend_pid() %d", reported, actual)
	}

	ctx := testContext(t)
	sleeping := sleepInBackground(conn)
	waitRunning(t, tn.db, sleep60)
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	wantPgError(t, <-sleeping, "57014")

	su := directConn(t, tn.db)
	if !queryValue[bool](t, su, "SELECT pg_terminate_backend($1)", int32(reported)) {
		t.Fatalf("pg_terminate_backend(%d) ended nothing", reported)
	}
	var one int
	if err := conn.QueryRow(testContext(t), "SELECT 1").Scan(&one); err == nil {
		t.Fatal("the session answered after pg_terminate_backend of its reported pid")
	}
}
