-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "customer_id" SET DEFAULT 7;
-- metadata: model invoice
--   set {"name":"customer_id","type":"Int","default":7,"references":{"table":"customer","column":"id","onDelete":"CASCADE"}}
