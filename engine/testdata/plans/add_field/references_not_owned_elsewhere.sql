-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "contact_id" integer REFERENCES "shared"."contact" ("id") ON DELETE RESTRICT;
-- metadata: model invoice
--   set {"name":"contact_id","type":"Int","references":{"schema":"shared","table":"contact","column":"id"}}
