// Connections that end as soon as they are open, one by one and from a
// pool: run by TestClientsNodePgQuickDisconnect, which wants no error from
// node or the proxy.
import pg from 'pg'

const url = process.env.DATABASE_URL
for (let i = 0; i < 20; i++) {
  const client = new pg.Client({ connectionString: url })
  client.on('error', (err) => console.log('error event:', err.message))
  await client.connect()
  await client.end()
}
const pool = new pg.Pool({ connectionString: url, max: 5 })
await Promise.all(Array.from({ length: 5 }, () => pool.query('SELECT 1')))
await pool.end()
console.log('done')
