-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "contact_id" integer DEFAULT 1;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP COLUMN IF EXISTS "contact_id";
-- phase 2: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_contact_id_fkey" FOREIGN KEY ("contact_id") REFERENCES "acme-corp"."contact" ("id") ON DELETE SET NULL NOT VALID;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_contact_id_fkey";
-- phase 3: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_contact_id_fkey";
-- metadata: model invoice
--   set {"name":"contact_id","type":"Int","default":1,"references":{"table":"contact","column":"id","onDelete":"SET NULL"}}
