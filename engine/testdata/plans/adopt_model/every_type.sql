-- phase 1: transaction
ALTER TABLE "acme-corp"."legacy" OWNER TO CURRENT_USER;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme-corp"."legacy" TO "acme-corp";
-- metadata: model legacy
--   set {"name":"code","type":"String","maxLength":12,"primaryKey":true}
--   set {"name":"status","type":"String","nullable":false,"default":"active","maxLength":20}
--   set {"name":"qty","type":"Int","default":0}
--   set {"name":"rate","type":"Float","default":1.5}
--   set {"name":"paid","type":"Boolean","nullable":false,"default":true}
--   set {"name":"due","type":"DateTime","default":"2024-01-01T00:00:00Z"}
--   set {"name":"notes","type":"Text","default":"it's"}
--   set {"name":"data","type":"Json","default":{"a":1}}
--   set {"name":"email","type":"String","unique":true,"maxLength":200}
--   set {"name":"customer_id","type":"Int","references":{"table":"customer","column":"id","onDelete":"CASCADE"}}
--   set {"name":"region_id","type":"Int","references":{"schema":"shared","table":"region","column":"id","onDelete":"RESTRICT"}}
