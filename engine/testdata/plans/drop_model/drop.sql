-- phase 1: transaction
DROP TABLE "acme-corp"."invoice";
-- metadata: drop the model
