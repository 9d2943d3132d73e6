-- phase 1: transaction
ALTER TABLE "acme-corp"."mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm" ADD COLUMN "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" integer UNIQUE;
-- metadata: model mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm
--   set {"name":"fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","type":"Int","unique":true}
