-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "name" DROP NOT NULL;
-- metadata: model invoice
--   set {"name":"name","type":"String"}
