-- phase 1: transaction
ALTER TABLE "acme-corp"."customers" OWNER TO CURRENT_USER;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme-corp"."customers" TO "acme-corp";
-- metadata: model customers
--   set {"name":"id","type":"Int","primaryKey":true}
--   set {"name":"name","type":"Text"}
