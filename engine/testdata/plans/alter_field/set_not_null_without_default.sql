-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "customer_id" SET NOT NULL;
-- metadata: model invoice
--   set {"name":"customer_id","type":"Int","nullable":false,"references":{"table":"customer","column":"id","onDelete":"CASCADE"}}
