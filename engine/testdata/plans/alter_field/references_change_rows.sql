-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT "invoice_customer_id_fkey";
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_customer_id_fkey" FOREIGN KEY ("customer_id") REFERENCES "shared"."customer" ("id") ON DELETE SET NULL NOT VALID;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_customer_id_fkey";
-- undo: ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_customer_id_fkey" FOREIGN KEY ("customer_id") REFERENCES "acme-corp"."customer" ("id") ON DELETE CASCADE;
-- phase 2: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_customer_id_fkey";
-- metadata: model invoice
--   set {"name":"customer_id","type":"Int","references":{"schema":"shared","table":"customer","column":"id","onDelete":"SET NULL"}}
