-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "status" SET DEFAULT 'x''); DROP --\';
-- metadata: model invoice
--   set {"name":"status","type":"String","default":"x'); DROP --\\","maxLength":20}
