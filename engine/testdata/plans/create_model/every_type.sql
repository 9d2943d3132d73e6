-- phase 1: transaction
CREATE TABLE "acme-corp"."invoice" ("id" varchar(100) PRIMARY KEY, "name" varchar(100) NOT NULL, "title" varchar(200) DEFAULT 'it''s; DROP TABLE x; --', "qty" integer NOT NULL DEFAULT -5, "amount" double precision DEFAULT 1.5, "paid" boolean DEFAULT false, "due" timestamptz DEFAULT '2024-01-01T06:30:00.5Z'::timestamptz, "notes" text DEFAULT 'C:\new\table /* */ $$ " ''''', "data" jsonb DEFAULT '{"n":[1,2.5],"note":"it''s"}'::jsonb, "code" varchar(20) UNIQUE, "customer_id" integer REFERENCES "acme-corp"."customer" ("id") ON DELETE CASCADE, "contact_id" integer REFERENCES "acme-corp"."contact" ("id") ON DELETE SET NULL, "owner_id" integer REFERENCES "acme-corp"."user_account" ("id") ON DELETE RESTRICT, "region_id" integer REFERENCES "shared"."region" ("id") ON DELETE RESTRICT);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme-corp"."invoice" TO "acme-corp";
-- metadata: model invoice
--   set {"name":"id","type":"String","primaryKey":true}
--   set {"name":"name","type":"String","nullable":false}
--   set {"name":"title","type":"String","default":"it's; DROP TABLE x; --","maxLength":200}
--   set {"name":"qty","type":"Int","nullable":false,"default":-5}
--   set {"name":"amount","type":"Float","default":1.5}
--   set {"name":"paid","type":"Boolean","default":false}
--   set {"name":"due","type":"DateTime","default":"2024-01-01T12:00:00.5+05:30"}
--   set {"name":"notes","type":"Text","default":"C:\\new\\table /* */ $$ \" ''"}
--   set {"name":"data","type":"Json","default":{"note":"it's","n":[1,2.5]}}
--   set {"name":"code","type":"String","unique":true,"maxLength":20}
--   set {"name":"customer_id","type":"Int","references":{"table":"customer","column":"id","onDelete":"CASCADE"}}
--   set {"name":"contact_id","type":"Int","references":{"table":"contact","column":"id","onDelete":"SET NULL"}}
--   set {"name":"owner_id","type":"Int","references":{"table":"user_account","column":"id","onDelete":"RESTRICT"}}
--   set {"name":"region_id","type":"Int","references":{"schema":"shared","table":"region","column":"id"}}
