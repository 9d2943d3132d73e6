-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_status_key" UNIQUE ("status");
-- metadata: model invoice
--   set {"name":"status","type":"String","unique":true,"default":"draft","maxLength":20}
