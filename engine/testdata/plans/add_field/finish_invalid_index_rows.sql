-- phase 1: online
DROP INDEX CONCURRENTLY IF EXISTS "acme-corp"."invoice_ref_key";
-- phase 2: online
CREATE UNIQUE INDEX CONCURRENTLY "invoice_ref_key" ON "acme-corp"."invoice" ("ref");
-- undo: DROP INDEX CONCURRENTLY IF EXISTS "acme-corp"."invoice_ref_key";
-- phase 3: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_ref_key" UNIQUE USING INDEX "invoice_ref_key";
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_ref_key";
-- metadata: model invoice
--   set {"name":"ref","type":"String","unique":true}
