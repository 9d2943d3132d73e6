-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "id" SET DEFAULT 'x';
-- metadata: model invoice
--   set {"name":"id","type":"String","default":"x","primaryKey":true}
