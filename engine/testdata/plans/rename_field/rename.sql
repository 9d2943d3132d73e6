-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" RENAME COLUMN "status" TO "state";
-- metadata: model invoice
--   set {"name":"state","type":"String","default":"draft","maxLength":20}
--   remove status
