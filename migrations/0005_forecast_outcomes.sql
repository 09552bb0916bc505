ALTER TABLE "forecasts" ADD COLUMN "lower50" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "upper50" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "lower80" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "upper80" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "lower90" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "upper90" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "lower99" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "upper99" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "realised_return" double precision;--> statement-breakpoint
ALTER TABLE "forecasts" ADD COLUMN "outcome_date" date;--> statement-breakpoint
CREATE INDEX "forecasts_scored_idx" ON "forecasts" USING btree ("model_id","horizon_days","outcome_date" DESC NULLS LAST,"id" DESC NULLS LAST) WHERE "forecasts"."realised_return" is not null;--> statement-breakpoint
CREATE INDEX "forecasts_unscored_idx" ON "forecasts" USING btree ("instrument_id") WHERE "forecasts"."realised_return" is null;