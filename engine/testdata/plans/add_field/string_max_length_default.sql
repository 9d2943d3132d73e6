-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "state" varchar(12) NOT NULL DEFAULT 'new';
-- metadata: model invoice
--   set {"name":"state","type":"String","nullable":false,"default":"new","maxLength":12}
