-- phase 1: transaction
CREATE SCHEMA "tenant_0day";
CREATE ROLE "0day_co" NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA "tenant_0day" TO "0day_co";
ALTER DEFAULT PRIVILEGES IN SCHEMA "tenant_0day" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "0day_co";
ALTER DEFAULT PRIVILEGES IN SCHEMA "tenant_0day" GRANT USAGE, SELECT ON SEQUENCES TO "0day_co";
-- metadata: left alone
-- tenant: register
