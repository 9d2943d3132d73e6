// knex through pgmigrate-proxy: the recipe of docs/clients.md, run by
// TestClientsKnex. It prints one JSON line per step.
import knex from 'knex'

const show = (step, rows) => console.log(JSON.stringify({ step, rows }))

// No searchPath: the proxy sets the tenant's schema.
const db = knex({ client: 'pg', connection: process.env.DATABASE_URL })
show('session', (await db.raw('SELECT current_schema, current_user, session_user')).rows)

// knex.raw returns node-postgres' result: the rows are in .rows.
let res = await db.raw(`CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]')`)
show('create_model', res.rows)
res = await db.raw('CALL migrate.add_field(?, ?)', [
  'invoice',
  JSON.stringify({ name: 'status', type: 'String', default: 'draft' }),
])
show('add_field', res.rows)
show('describe', (await db.raw('CALL migrate.describe(?)', ['invoice'])).rows)

await db('invoice').insert({ id: 1, title: 'first' })
await db('invoice').insert({ id: 2, title: 'second', status: 'paid' })
show('rows', await db('invoice').select('id', 'title', 'status').orderBy('id'))

try {
  await db.raw('CALL migrate.add_field(?, ?)', ['invoice', '{"name":"status","type":"Int"}'])
} catch (err) {
  show('error', [{ code: err.code }])
}

// Not in a transaction: a migrate command is a transaction of its own.
try {
  await db.transaction((tx) => tx.raw('CALL migrate.list_models()'))
} catch (err) {
  show('in_transaction', [{ code: err.code }])
}
await db.destroy()
