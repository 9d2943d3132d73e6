-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_ref_key" UNIQUE USING INDEX "invoice_ref_key";
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_ref_key";
-- metadata: model invoice
--   set {"name":"ref","type":"String","unique":true}
