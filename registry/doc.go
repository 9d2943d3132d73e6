// Package registry keeps the tenants of every upstream's catalog
// (pgmigrate.tenants, which the engine writes) in memory, for routing.
//
// A Registry loads each upstream's tenants when it starts, then listens on
// the upstream's pgmigrate channel, on which the engine notifies, in the
// transaction of create_tenant and drop_tenant, the org it made or dropped:
// the Registry reads that org's row again, so an org is routable, or no
// longer, on every proxy within a round trip of the commit. A notification
// sent while the listener is disconnected is lost: the Registry reloads
// everything on every reconnect and every Refresh interval.
//
// A lookup is a map read. An org it does not know is looked for in every
// catalog before it is called unknown, once per MissTTL: a flood of
// attempts for unknown names costs the upstreams one query each per TTL,
// and the names remembered are bounded.
package registry
