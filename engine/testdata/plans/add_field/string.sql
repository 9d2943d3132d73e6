-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "memo" varchar(100);
-- metadata: model invoice
--   set {"name":"memo","type":"String"}
