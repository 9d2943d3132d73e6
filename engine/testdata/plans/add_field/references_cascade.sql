-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "contact_id" integer REFERENCES "acme-corp"."contact" ("id") ON DELETE CASCADE;
-- metadata: model invoice
--   set {"name":"contact_id","type":"Int","references":{"table":"contact","column":"id","onDelete":"CASCADE"}}
