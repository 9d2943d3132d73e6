-- phase 1: online
DROP INDEX CONCURRENTLY IF EXISTS "acme-corp"."invoice_status_key";
-- phase 2: online
CREATE UNIQUE INDEX CONCURRENTLY "invoice_status_key" ON "acme-corp"."invoice" ("status");
-- undo: DROP INDEX CONCURRENTLY IF EXISTS "acme-corp"."invoice_status_key";
-- phase 3: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_status_key" UNIQUE USING INDEX "invoice_status_key";
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_status_key";
-- metadata: model invoice
--   set {"name":"status","type":"String","unique":true,"default":"draft","maxLength":20}
