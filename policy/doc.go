// Package policy owns the proxy's configuration model and its tenant routing.
//
// A Config is read once at start (Load: YAML file, ${VAR} expansion, then
// Validate) and again on SIGHUP. From it, a Router answers the one question
// the proxy asks of every new client connection: given the user, the database
// name and the org named in the startup options, which upstream, database and
// schema does this session belong to? The answer is a Route.
//
// Tenants come from a Registry. The static registry serves the config file's
// tenants: list; other sources (the catalog table pgmigrate.tenants) plug in
// behind the same interface. Router.Update swaps the registry and policy
// atomically, so sessions that are already routed are never disturbed.
package policy
