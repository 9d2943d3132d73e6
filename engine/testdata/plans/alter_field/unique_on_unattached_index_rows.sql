-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_status_key" UNIQUE USING INDEX "invoice_status_key";
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_status_key";
-- metadata: model invoice
--   set {"name":"status","type":"String","unique":true,"default":"draft","maxLength":20}
