import { HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { priorityOfOperation, type LoadControl } from '../admission/load.js';
import type { Priority } from '../db/sql-stats.js';
import { CodedError, DeadlineExceededError, ErrorCode, OverloadedError, type ShedReason } from '../errors.js';
import type { RequestContext } from '../graphql/context.js';
import type { CostBudget } from './budget.js';
import type { CostEstimator } from './cost-estimate.js';
import type { CostRecorder } from './cost-recorder.js';

export interface CostPluginOptions {
  estimator: CostEstimator;
  /** Operations estimated above this are refused with QUERY_TOO_COSTLY. */
  maxCost: number;
  /** Largest value each slicing argument may take, by schema coordinate (`Portfolio.positions`). */
  caps: Record<string, number>;
  /** Each caller's budget per rolling minute; refused with RATE_LIMITED and Retry-After. */
  budget: CostBudget;
  /** Learns estimated against actual cost per operation and field. */
  recorder?: CostRecorder;
  /** Observes each executed operation's estimated and actual cost. */
  observe?: (estimated: number, actual: number) => void;
  /** Admission by the database's health and the cost in flight, asked again now that the operation is parsed and priced. */
  load?: LoadControl;
  /** Called when `load` sheds an operation. */
  onShed?: (reason: ShedReason, priority: Priority) => void;
}

/**
 * Prices every operation before it executes, from the schema's @cost/@listSize directives and the
 * request's variables (Apollo has resolved the operation but run nothing yet): a slicing argument
 * past its list's cap, a cost above the limit, an operation admission sheds (its priority now known
 * from its type, its cost from the estimate), or a caller over budget is refused here, so no SQL
 * runs. Every answer then carries `extensions.cost`: the estimate, and what the request really did.
 */
export function createCostPlugin(options: CostPluginOptions): ApolloServerPlugin<RequestContext> {
  const { estimator, maxCost, caps, budget, recorder, observe, load, onShed } = options;
  return {
    async requestDidStart() {
      // the operation's cost counted in flight from the start of its execution to its answer
      let release: (() => void) | undefined;
      return {
        async didResolveOperation({ document, operation, request, contextValue }) {
          if (!operation) return; // Apollo has already refused a request that names no operation
          const { cost, slices } = estimator.estimate(document, operation, request.variables ?? {});
          for (const s of slices) {
            const cap = caps[s.coordinate];
            if (cap !== undefined && (s.value > cap || s.value < 0)) {
              throw new CodedError(
                ErrorCode.BAD_USER_INPUT,
                `${s.argument} of ${s.coordinate} must be between 0 and ${cap}, got ${s.value}`,
                { argument: s.argument, limit: cap },
                400,
              );
            }
          }
          contextValue.cost.estimated = cost;
          contextValue.cost.slices = slices.map(({ coordinate, value }) => ({ coordinate, value }));
          if (cost > maxCost) {
            throw new CodedError(
              ErrorCode.QUERY_TOO_COSTLY,
              `the operation's estimated cost ${cost} is above the limit of ${maxCost}: ask for fewer items (smaller first:) or fewer fields`,
              { cost, limit: maxCost },
              400,
            );
          }
          if (load) {
            const priority = priorityOfOperation(operation.operation, contextValue);
            contextValue.sql.priority = priority;
            contextValue.sql.patienceMs = load.patienceMs(priority);
            const reason = load.refusal(priority, contextValue.deadline.remainingMs(), cost);
            // it could not finish before its deadline even on an idle server: the answer it would get later, now
            if (reason === 'deadline') throw new DeadlineExceededError(contextValue.deadline.ms);
            if (reason) {
              onShed?.(reason, priority);
              throw new OverloadedError(reason, priority);
            }
          }
          const decision = await budget.spend(contextValue.caller, cost);
          contextValue.cost.budget = { limit: decision.limit, remaining: decision.remaining };
          if (!decision.allowed && cost > decision.limit) {
            // no wait would help: the operation is larger than a whole minute's budget
            throw new CodedError(
              ErrorCode.QUERY_TOO_COSTLY,
              `the operation's estimated cost ${cost} is above this caller's budget of ${decision.limit} per minute`,
              { cost, limit: decision.limit },
              400,
            );
          }
          if (!decision.allowed) {
            const error = new CodedError(
              ErrorCode.RATE_LIMITED,
              `this caller's cost budget of ${decision.limit} per minute is spent: retry in ${decision.retryAfterSeconds} s`,
              { cost, limit: decision.limit, retryAfter: decision.retryAfterSeconds },
            );
            error.extensions.http = { status: 429, headers: new HeaderMap([['retry-after', String(decision.retryAfterSeconds)]]) };
            throw error;
          }
        },

        // Held here, not in didResolveOperation: Apollo runs every plugin's didResolveOperation at once
        // and answers as soon as one throws, so a hold taken there after an await (the budget's, in
        // Redis) could come after the answer, and never be released. Execution starts only once they
        // all passed, and willSendResponse always follows it.
        async executionDidStart({ contextValue }) {
          if (load && contextValue.cost.estimated !== null) release = load.hold(contextValue.cost.estimated);
        },

        async willSendResponse({ response, contextValue, operationName }) {
          release?.();
          if (response.body.kind !== 'single') return;
          const { sql, work, cost } = contextValue;
          const actual = { sqlStatements: sql.statements, loaderBatches: work.batches, loaderKeys: work.keys, rows: work.rows };
          response.body.singleResult.extensions = {
            ...response.body.singleResult.extensions,
            cost: { estimated: cost.estimated, limit: maxCost, actual, ...(cost.budget ? { budget: cost.budget } : {}) },
          };
          // a cache hit did no work: it says nothing about what the operation costs
          const hit = (response.body.singleResult.extensions?.responseCache as { hit?: boolean } | undefined)?.hit === true;
          if (cost.estimated !== null && !hit && !response.body.singleResult.errors?.length) {
            recorder?.record(operationName ?? null, { ...cost, estimated: cost.estimated }, contextValue.sql, work, contextValue.partner !== null);
            observe?.(cost.estimated, work.rows);
          }
        },
      };
    },
  };
}
