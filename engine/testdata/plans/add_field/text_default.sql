-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" ADD COLUMN "notes" text DEFAULT 'it''s; DROP TABLE x; --\''); /* ☃ */';
-- metadata: model invoice
--   set {"name":"notes","type":"Text","default":"it's; DROP TABLE x; --\\'); /* ☃ */"}
