-- phase 1: transaction
CREATE TABLE "acme-corp"."note" ("body" text);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme-corp"."note" TO "acme-corp";
-- metadata: model note
--   set {"name":"body","type":"Text"}
