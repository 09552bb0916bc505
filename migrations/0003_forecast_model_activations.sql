CREATE TABLE "forecast_model_activations" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "forecast_model_activations_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"model_id" integer NOT NULL,
	"previous_model_id" integer,
	"action" text NOT NULL,
	"activated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "forecast_model_activations" ADD CONSTRAINT "forecast_model_activations_model_id_forecast_models_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."forecast_models"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "forecast_model_activations" ADD CONSTRAINT "forecast_model_activations_previous_model_id_forecast_models_id_fk" FOREIGN KEY ("previous_model_id") REFERENCES "public"."forecast_models"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "forecast_model_activations_name_idx" ON "forecast_model_activations" USING btree ("name","id");