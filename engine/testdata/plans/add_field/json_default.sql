-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "extra" jsonb DEFAULT '["it''s",{"k":null}]'::jsonb;
-- metadata: model invoice
--   set {"name":"extra","type":"Json","default":["it's",{"k":null}]}
