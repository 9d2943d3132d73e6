-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "qty" integer DEFAULT -2147483648;
-- metadata: model invoice
--   set {"name":"qty","type":"Int","default":-2147483648}
