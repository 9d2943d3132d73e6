-- phase 1: transaction
REVOKE CREATE ON SCHEMA "acme-corp" FROM "acme-corp";
-- metadata: left alone
-- tenant: register
