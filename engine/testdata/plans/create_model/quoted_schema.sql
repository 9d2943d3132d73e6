-- phase 1: transaction
CREATE TABLE "we""ird; --"."invoice" ("id" integer PRIMARY KEY, "customer_id" integer REFERENCES "we""ird; --"."customer" ("id") ON DELETE RESTRICT);
-- metadata: model invoice
--   set {"name":"id","type":"Int","primaryKey":true}
--   set {"name":"customer_id","type":"Int","references":{"table":"customer","column":"id"}}
