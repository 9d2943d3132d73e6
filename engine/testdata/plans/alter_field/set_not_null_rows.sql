-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "amount" SET NOT NULL;
-- metadata: model invoice
--   set {"name":"amount","type":"Float","nullable":false,"default":0}
