-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "ref" integer NOT NULL;
-- metadata: model invoice
--   set {"name":"ref","type":"Int","nullable":false}
