-- phase 1: transaction
CREATE SCHEMA "acme-corp";
CREATE ROLE "acme-corp" NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA "acme-corp" TO "acme-corp";
ALTER DEFAULT PRIVILEGES IN SCHEMA "acme-corp" GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLES TO "acme-corp";
ALTER DEFAULT PRIVILEGES IN SCHEMA "acme-corp" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "acme-corp";
CREATE ROLE "acme-corp.login" LOGIN IN ROLE "acme-corp" PASSWORD '********';
-- runs with the secret in place of '********'
-- metadata: left alone
-- tenant: register
-- login role: acme-corp.login, its password returned
