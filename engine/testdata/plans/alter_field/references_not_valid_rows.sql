-- phase 1: transaction
ALTER TABLE "acme-corp"."invoice" VALIDATE CONSTRAINT "invoice_customer_id_fkey";
-- metadata: unchanged
