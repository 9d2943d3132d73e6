-- phase 1: transaction
CREATE TABLE "acme-corp"."note" ("body" text);
-- metadata: model note
--   set {"name":"body","type":"Text"}
