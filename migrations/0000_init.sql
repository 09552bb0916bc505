CREATE TYPE "public"."trade_side" AS ENUM('BUY', 'SELL');--> statement-breakpoint
CREATE TABLE "app_meta" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "forecast_models" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "forecast_models_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"version" text NOT NULL,
	"active" boolean DEFAULT false NOT NULL,
	"parameters" text DEFAULT '{}' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "forecasts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "forecasts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"model_id" integer NOT NULL,
	"instrument_id" integer NOT NULL,
	"as_of" date NOT NULL,
	"horizon_days" integer NOT NULL,
	"expected_return" double precision NOT NULL,
	"lower95" double precision NOT NULL,
	"upper95" double precision NOT NULL,
	"generated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "forecasts_horizon_positive" CHECK ("forecasts"."horizon_days" > 0)
);
--> statement-breakpoint
CREATE TABLE "instruments" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "instruments_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"symbol" text NOT NULL,
	"name" text NOT NULL,
	"asset_class" text NOT NULL,
	"currency" text DEFAULT 'USD' NOT NULL,
	CONSTRAINT "instruments_symbol_unique" UNIQUE("symbol")
);
--> statement-breakpoint
CREATE TABLE "portfolios" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "portfolios_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"owner_id" integer NOT NULL,
	"name" text NOT NULL,
	"base_currency" text DEFAULT 'USD' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "positions" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "positions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"portfolio_id" integer NOT NULL,
	"instrument_id" integer NOT NULL,
	"quantity" numeric(38, 8) NOT NULL,
	"average_cost" numeric(38, 8) NOT NULL,
	"cost_basis" numeric DEFAULT '0' NOT NULL,
	"realized_pnl" numeric(38, 8) DEFAULT '0' NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "positions_quantity_non_negative" CHECK ("positions"."quantity" >= 0)
);
--> statement-breakpoint
CREATE TABLE "prices" (
	"instrument_id" integer NOT NULL,
	"date" date NOT NULL,
	"close" numeric(38, 8) NOT NULL,
	CONSTRAINT "prices_instrument_id_date_pk" PRIMARY KEY("instrument_id","date"),
	CONSTRAINT "prices_close_positive" CHECK ("prices"."close" > 0)
);
--> statement-breakpoint
CREATE TABLE "trades" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "trades_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"portfolio_id" integer NOT NULL,
	"instrument_id" integer NOT NULL,
	"side" "trade_side" NOT NULL,
	"quantity" numeric(38, 8) NOT NULL,
	"price" numeric(38, 8) NOT NULL,
	"executed_at" timestamp (3) with time zone NOT NULL,
	"idempotency_key" text,
	"request_digest" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "trades_quantity_positive" CHECK ("trades"."quantity" > 0),
	CONSTRAINT "trades_price_positive" CHECK ("trades"."price" > 0)
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "users_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"email" text NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_email_unique" UNIQUE("email")
);
--> statement-breakpoint
ALTER TABLE "forecasts" ADD CONSTRAINT "forecasts_model_id_forecast_models_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."forecast_models"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "forecasts" ADD CONSTRAINT "forecasts_instrument_id_instruments_id_fk" FOREIGN KEY ("instrument_id") REFERENCES "public"."instruments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "portfolios" ADD CONSTRAINT "portfolios_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "positions" ADD CONSTRAINT "positions_portfolio_id_portfolios_id_fk" FOREIGN KEY ("portfolio_id") REFERENCES "public"."portfolios"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "positions" ADD CONSTRAINT "positions_instrument_id_instruments_id_fk" FOREIGN KEY ("instrument_id") REFERENCES "public"."instruments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "prices" ADD CONSTRAINT "prices_instrument_id_instruments_id_fk" FOREIGN KEY ("instrument_id") REFERENCES "public"."instruments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "trades" ADD CONSTRAINT "trades_portfolio_id_portfolios_id_fk" FOREIGN KEY ("portfolio_id") REFERENCES "public"."portfolios"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "trades" ADD CONSTRAINT "trades_instrument_id_instruments_id_fk" FOREIGN KEY ("instrument_id") REFERENCES "public"."instruments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "forecast_models_name_version_idx" ON "forecast_models" USING btree ("name","version");--> statement-breakpoint
CREATE UNIQUE INDEX "forecast_models_one_active_idx" ON "forecast_models" USING btree ("name") WHERE "forecast_models"."active";--> statement-breakpoint
CREATE UNIQUE INDEX "forecasts_model_instrument_horizon_asof_idx" ON "forecasts" USING btree ("model_id","instrument_id","horizon_days","as_of");--> statement-breakpoint
CREATE INDEX "forecasts_instrument_horizon_idx" ON "forecasts" USING btree ("instrument_id","horizon_days");--> statement-breakpoint
CREATE INDEX "portfolios_owner_id_idx" ON "portfolios" USING btree ("owner_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "positions_portfolio_instrument_idx" ON "positions" USING btree ("portfolio_id","instrument_id");--> statement-breakpoint
CREATE INDEX "positions_instrument_id_idx" ON "positions" USING btree ("instrument_id");--> statement-breakpoint
CREATE UNIQUE INDEX "trades_portfolio_idempotency_key_idx" ON "trades" USING btree ("portfolio_id","idempotency_key");--> statement-breakpoint
CREATE INDEX "trades_portfolio_executed_idx" ON "trades" USING btree ("portfolio_id","executed_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "trades_instrument_id_idx" ON "trades" USING btree ("instrument_id");