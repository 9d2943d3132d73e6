-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "paid" boolean NOT NULL DEFAULT true;
-- metadata: model invoice
--   set {"name":"paid","type":"Boolean","nullable":false,"default":true}
