-- phase 1: transaction
GRANT USAGE, CREATE ON SCHEMA "acme-corp" TO "acme-corp";
ALTER DEFAULT PRIVILEGES IN SCHEMA "acme-corp" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "acme-corp";
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme-corp"."invoice" TO "acme-corp";
-- metadata: left alone
-- tenant: register
