-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "due" timestamptz DEFAULT '2024-03-01T06:59:59.999999Z'::timestamptz;
-- metadata: model invoice
--   set {"name":"due","type":"DateTime","default":"2024-02-29T23:59:59.999999-07:00"}
