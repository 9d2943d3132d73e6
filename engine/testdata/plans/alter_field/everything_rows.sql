-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD CONSTRAINT "invoice_code_fkey" FOREIGN KEY ("code") REFERENCES "acme-corp"."code" ("code") ON DELETE RESTRICT NOT VALID;
-- undo: ALTER TABLE "acme-corp"."invoice" DROP CONSTRAINT IF EXISTS "invoice_code_fkey";
-- phase 2: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_code_fkey";
-- phase 3: transaction
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "code" SET NOT NULL;
ALTER TABLE "acme-corp"."invoice" ALTER COLUMN "code" SET DEFAULT 'none';
-- metadata: model invoice
--   set {"name":"code","type":"Text","nullable":false,"default":"none","references":{"table":"code","column":"code"}}
