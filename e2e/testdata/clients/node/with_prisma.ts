// Prisma 7 with @prisma/adapter-pg through pgmigrate-proxy: the recipe of
// docs/clients.md, run by TestClientsPrisma after `prisma generate`. It
// prints one JSON line per step.
import pg from 'pg'
import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from './generated/prisma/client.ts'

// duration_ms is a bigint: JSON.stringify needs it as a number.
const show = (step: string, rows: unknown) =>
  console.log(JSON.stringify({ step, rows }, (_, v) => (typeof v === 'bigint' ? Number(v) : v)))

const org = process.env.ORG!
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
// schema: the tenant's schema, which Prisma writes into every query it
// generates (without it, "public").
const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { schema: org }) })

show('session', await prisma.$queryRaw`SELECT current_schema, current_user, session_user`)
show('create_model', await prisma.$queryRawUnsafe(
  `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]')`))
const status = JSON.stringify({ name: 'status', type: 'String', default: 'draft' })
show('add_field', await prisma.$queryRaw`CALL migrate.add_field(${'invoice'}, ${status})`)
show('describe', await prisma.$queryRaw`CALL migrate.describe(${'invoice'})`)

await prisma.invoice.create({ data: { id: 1, title: 'first' } })
await prisma.invoice.create({ data: { id: 2, title: 'second', status: 'paid' } })
show('rows', await prisma.invoice.findMany({ orderBy: { id: 'asc' } }))

try {
  await prisma.$queryRaw`CALL migrate.add_field(${'invoice'}, ${'{"name":"status","type":"Int"}'})`
} catch (err: any) {
  // A PostgreSQL error reaches Prisma as P2010, its SQLSTATE in meta.
  show('error', [{ code: err.meta?.driverAdapterError?.cause?.originalCode }])
}
await prisma.$disconnect()

// Without the schema option Prisma looks for public.invoice.
const unscoped = new PrismaClient({ adapter: new PrismaPg(pool) })
try {
  await unscoped.invoice.count()
} catch (err: any) {
  show('without_schema', [{ code: err.code, table: err.meta?.modelName ?? null, message: String(err.message).split('\n').pop() }])
}
await unscoped.$disconnect()
await pool.end()
