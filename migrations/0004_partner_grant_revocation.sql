ALTER TABLE "partner_grants" DROP CONSTRAINT "partner_grants_partner_id_user_id_pk";--> statement-breakpoint
ALTER TABLE "partner_grants" ADD COLUMN "id" integer PRIMARY KEY NOT NULL GENERATED ALWAYS AS IDENTITY (sequence name "partner_grants_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1);--> statement-breakpoint
ALTER TABLE "partner_grants" ADD COLUMN "revoked_at" timestamp with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "partner_grants_live_idx" ON "partner_grants" USING btree ("partner_id","user_id") WHERE "partner_grants"."revoked_at" is null;