-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "ref" varchar(100) UNIQUE;
-- metadata: model invoice
--   set {"name":"ref","type":"String","unique":true}
