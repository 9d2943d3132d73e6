-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_status_fkey" FOREIGN KEY ("status") REFERENCES "acme-corp"."status" ("name") ON DELETE RESTRICT NOT VALID;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_status_fkey";
-- phase 2: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_status_fkey";
-- metadata: model invoice
--   set {"name":"status","type":"String","default":"draft","references":{"table":"status","column":"name"},"maxLength":20}
