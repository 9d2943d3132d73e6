-- phase 1: transaction
CREATE TABLE "acme-corp"."account" ("code" varchar(12) PRIMARY KEY, "id" integer UNIQUE);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme-corp"."account" TO "acme-corp";
-- metadata: model account
--   set {"name":"code","type":"String","maxLength":12,"primaryKey":true}
--   set {"name":"id","type":"Int","unique":true}
