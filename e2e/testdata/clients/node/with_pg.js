// node-postgres (pg) through pgmigrate-proxy: the recipe of docs/clients.md,
// run by TestClientsNodePg. It prints one JSON line per step.
import pg from 'pg'

const show = (step, rows) => console.log(JSON.stringify({ step, rows }))

// DATABASE_URL is postgres://USER:PASSWORD@PROXY:6432/ORG
const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
await client.connect()
show('session', (await client.query('SELECT current_schema, current_user, session_user')).rows)

// A command with literals goes as a simple Query...
let res = await client.query(`CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]')`)
show('create_model', res.rows)

// ...one with parameters as Parse/Bind/Execute.
res = await client.query('CALL migrate.add_field($1, $2)', [
  'invoice',
  JSON.stringify({ name: 'status', type: 'String', default: 'draft' }),
])
show('add_field', res.rows)
show('describe', (await client.query('CALL migrate.describe($1)', ['invoice'])).rows)

// Unqualified names are the tenant's tables.
await client.query('INSERT INTO invoice (id, title) VALUES ($1, $2)', [1, 'first'])
await client.query("INSERT INTO invoice (id, title, status) VALUES (2, 'second', 'paid')")
show('rows', (await client.query('SELECT id, title, status FROM invoice ORDER BY id')).rows)

try {
  await client.query('CALL migrate.add_field($1, $2)', ['invoice', '{"name":"status","type":"Int"}'])
} catch (err) {
  show('error', [{ code: err.code }])
}
await client.end()

// The org named in options, with the tenant's real database, beside
// connection defaults. ORG_OPTION_URL is
// postgres://USER:PASSWORD@PROXY:6432/DATABASE?application_name=recipes&options=-c%20pgmigrate.org%3DORG%20-c%20statement_timeout%3D5s
const byOption = new pg.Client({ connectionString: process.env.ORG_OPTION_URL })
await byOption.connect()
show('org_option', (await byOption.query(`SELECT current_schema, current_setting('application_name') AS application_name,
  current_setting('statement_timeout') AS statement_timeout, count(*)::int AS invoices FROM invoice GROUP BY 1`)).rows)
await byOption.end()

// What is not a connection default is refused: REFUSED_URL has
// options=-c%20role%3Dpostgres
const refused = new pg.Client({ connectionString: process.env.REFUSED_URL })
try {
  await refused.connect()
} catch (err) {
  show('refused', [{ code: err.code, severity: err.severity }])
}
