-- phase 1: transaction
DROP ROLE "acme-corp";
-- metadata: left alone
-- tenant: unregister
