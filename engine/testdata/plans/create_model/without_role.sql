-- phase 1: transaction
CREATE TABLE "acme-corp"."note" ("id" integer PRIMARY KEY);
-- metadata: model note
--   set {"name":"id","type":"Int","primaryKey":true}
