-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "data" DROP DEFAULT;
-- metadata: model invoice
--   set {"name":"data","type":"Json"}
