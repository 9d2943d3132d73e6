-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT "invoice_customer_id_fkey";
-- metadata: model invoice
--   set {"name":"customer_id","type":"Int"}
