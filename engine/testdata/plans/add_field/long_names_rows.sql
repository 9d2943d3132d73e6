-- phase 1: transaction
ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" ADD COLUMN "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" integer;
-- undo: ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" DROP COLUMN IF EXISTS "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
-- phase 2: transaction
ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" ADD CONSTRAINT "mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_ffffffffffffffffffffffffffff_fkey" FOREIGN KEY ("fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff") REFERENCES "acme-corp"."contact" ("id") ON DELETE RESTRICT NOT VALID;
-- undo: ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" DROP CONSTRAINT IF EXISTS "mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_ffffffffffffffffffffffffffff_fkey";
-- phase 3: transaction
ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" VALIDATE CONSTRAINT "mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_ffffffffffffffffffffffffffff_fkey";
-- phase 4: online
CREATE UNIQUE INDEX CONCURRENTLY "mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_fffffffffffffffffffffffffffff_key" ON "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" ("fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
-- undo: DROP INDEX CONCURRENTLY IF EXISTS "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_fffffffffffffffffffffffffffff_key";
-- phase 5: transaction
ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" ADD CONSTRAINT "mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_fffffffffffffffffffffffffffff_key" UNIQUE USING INDEX "mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_fffffffffffffffffffffffffffff_key";
-- undo: ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" DROP CONSTRAINT IF EXISTS "mmmmmmmmmmmmmmmmmmmmmmmmmmmmm_fffffffffffffffffffffffffffff_key";
-- metadata: model mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm
--   set {"name":"fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","type":"Int","unique":true,"references":{"table":"contact","column":"id"}}
