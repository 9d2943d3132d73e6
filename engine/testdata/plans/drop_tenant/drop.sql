-- phase 1: transaction
DROP SCHEMA "acme-corp" CASCADE;
DROP ROLE "acme-corp.login";
DROP ROLE "acme-corp";
-- metadata: left alone
-- tenant: unregister
