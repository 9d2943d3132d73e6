-- phase 1: transaction
DROP SCHEMA "acme-corp" CASCADE;
DROP OWNED BY "acme-corp";
DROP ROLE "acme-corp";
-- metadata: left alone
-- tenant: unregister
