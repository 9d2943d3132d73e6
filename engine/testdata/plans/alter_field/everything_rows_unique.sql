-- phase 1: online
CREATE UNIQUE INDEX CONCURRENTLY "invoice_name_key" ON "acme-corp"."invoice" ("name");
-- undo: DROP INDEX CONCURRENTLY IF EXISTS "acme-corp"."invoice_name_key";
-- phase 2: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_name_key" UNIQUE USING INDEX "invoice_name_key";
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_name_key";
-- phase 3: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_name_fkey" FOREIGN KEY ("name") REFERENCES "acme-corp"."person" ("name") ON DELETE CASCADE NOT VALID;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_name_fkey";
-- phase 4: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_name_fkey";
-- phase 5: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "name" DROP NOT NULL;
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "name" SET DEFAULT '';
-- metadata: model invoice
--   set {"name":"name","type":"String","unique":true,"default":"","references":{"table":"person","column":"name","onDelete":"CASCADE"}}
