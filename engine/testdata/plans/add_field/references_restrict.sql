-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "contact_id" integer NOT NULL REFERENCES "acme-corp"."contact" ("id") ON DELETE RESTRICT;
-- metadata: model invoice
--   set {"name":"contact_id","type":"Int","nullable":false,"references":{"table":"contact","column":"id","onDelete":"RESTRICT"}}
