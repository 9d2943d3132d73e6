-- phase 1: online
CREATE UNIQUE INDEX CONCURRENTLY "invoice_contact_id_key" ON "acme-corp"."invoice" ("contact_id");
-- undo: DROP INDEX CONCURRENTLY IF EXISTS "acme-corp"."invoice_contact_id_key";
-- phase 2: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_contact_id_key" UNIQUE USING INDEX "invoice_contact_id_key";
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_contact_id_key";
-- phase 3: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_contact_id_fkey" FOREIGN KEY ("contact_id") REFERENCES "acme-corp"."contact" ("id") ON DELETE RESTRICT NOT VALID;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_contact_id_fkey";
-- phase 4: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_contact_id_fkey";
-- metadata: model invoice
--   set {"name":"contact_id","type":"Int","unique":true,"references":{"table":"contact","column":"id"}}
