-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "rate" double precision DEFAULT 1e-07;
-- metadata: model invoice
--   set {"name":"rate","type":"Float","default":1e-7}
