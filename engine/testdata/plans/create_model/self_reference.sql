-- phase 1: transaction
CREATE TABLE "acme-corp"."category" ("id" integer PRIMARY KEY, "parent_id" integer REFERENCES "acme-corp"."category" ("id") ON DELETE CASCADE);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme-corp"."category" TO "acme-corp";
-- metadata: model category
--   set {"name":"id","type":"Int","primaryKey":true}
--   set {"name":"parent_id","type":"Int","references":{"table":"category","column":"id","onDelete":"CASCADE"}}
