-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" DROP COLUMN "customer_id";
-- metadata: model invoice
--   remove customer_id
