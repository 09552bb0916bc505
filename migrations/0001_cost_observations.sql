CREATE TABLE "cost_observations" (
	"kind" text NOT NULL,
	"name" text NOT NULL,
	"samples" bigint NOT NULL,
	"estimated_sum" double precision NOT NULL,
	"actual_sum" double precision NOT NULL,
	"sql_statements_sum" bigint NOT NULL,
	"sql_ms_sum" double precision NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "cost_observations_kind_name_pk" PRIMARY KEY("kind","name")
);
