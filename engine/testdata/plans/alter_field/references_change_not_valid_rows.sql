-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT "fk legacy";
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_customer_id_fkey" FOREIGN KEY ("customer_id") REFERENCES "acme-corp"."customer" ("id") ON DELETE RESTRICT NOT VALID;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_customer_id_fkey";
-- undo: ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "fk legacy" FOREIGN KEY ("customer_id") REFERENCES "acme-corp"."client" ("id") ON DELETE NO ACTION NOT VALID;
-- phase 2: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_customer_id_fkey";
-- metadata: model invoice
--   set {"name":"customer_id","type":"Int","references":{"table":"customer","column":"id"}}
