-- phase 1: transaction
DROP SCHEMA "acme-corp" CASCADE;
-- metadata: left alone
-- tenant: unregister
