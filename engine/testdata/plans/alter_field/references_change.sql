-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT "invoice_customer_id_fkey";
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_customer_id_fkey" FOREIGN KEY ("customer_id") REFERENCES "acme-corp"."customer" ("id") ON DELETE RESTRICT;
-- metadata: model invoice
--   set {"name":"customer_id","type":"Int","references":{"table":"customer","column":"id","onDelete":"RESTRICT"}}
