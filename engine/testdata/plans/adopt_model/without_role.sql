-- phase 1: transaction
ALTER TABLE "acme-corp"."customers" OWNER TO CURRENT_USER;
-- metadata: model customers
--   set {"name":"id","type":"Int","primaryKey":true}
--   set {"name":"name","type":"Text"}
