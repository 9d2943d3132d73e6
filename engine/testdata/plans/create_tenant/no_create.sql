-- phase 1: transaction
CREATE SCHEMA "acme-corp";
CREATE ROLE "acme-corp" NOLOGIN;
GRANT USAGE ON SCHEMA "acme-corp" TO "acme-corp";
ALTER DEFAULT PRIVILEGES IN SCHEMA "acme-corp" GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLES TO "acme-corp";
ALTER DEFAULT PRIVILEGES IN SCHEMA "acme-corp" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "acme-corp";
-- metadata: left alone
-- tenant: register
