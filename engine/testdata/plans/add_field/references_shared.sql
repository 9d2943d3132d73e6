-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "region_id" integer REFERENCES "shared"."region" ("id") ON DELETE RESTRICT;
-- metadata: model invoice
--   set {"name":"region_id","type":"Int","references":{"schema":"shared","table":"region","column":"id"}}
