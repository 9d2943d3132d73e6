-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT "invoice_code_key";
-- metadata: model invoice
--   set {"name":"code","type":"Text"}
