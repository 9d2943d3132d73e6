// client.connect(); client.end() without waiting for the connection:
// node-postgres writes its Terminate before the startup packet, and the
// server drops the connection. Run by TestClientsNodePgQuickDisconnect,
// through the proxy and directly.
import pg from 'pg'

const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
client.on('error', (err) => console.log('error event:', err.message))
client.connect().then(() => console.log('connected'), (err) => console.log('connect failed:', err.message))
client.end().then(() => console.log('ended'))
