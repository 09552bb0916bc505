// The floor's one statement: the whole dashboard, in foliograph's shape, built as JSON by PostgreSQL
// (decimals as their text, as foliograph keeps them), and the bare node:http server around it. Shared
// by the floor and the LRU server, which runs the statement on a miss.
import { createServer, type IncomingMessage } from 'node:http';
import postgres from 'postgres';
import { verifyToken } from '../../src/admission/tokens.js';

const DASHBOARD_JSON = `
select json_build_object('data', json_build_object('viewer', case when u.id is null then null else json_build_object(
  'portfolios', json_build_object('nodes', coalesce((
    select json_agg(json_build_object('id', p.id::text, 'name', p.name, 'positions', json_build_object('nodes', coalesce((
      select json_agg(json_build_object(
        'quantity', pos.quantity::text, 'averageCost', pos.average_cost::text,
        'instrument', json_build_object('symbol', i.symbol, 'latestPrice', lp.j, 'latestForecast', lf.j)) order by pos.id)
      from (select * from positions where portfolio_id = p.id and quantity > 0 order by id limit 200) pos
      join instruments i on i.id = pos.instrument_id
      left join lateral (select json_build_object('date', date::text, 'close', close::text) as j
                         from prices where instrument_id = i.id order by date desc limit 1) lp on true
      left join lateral (select json_build_object('expectedReturn', expected_return, 'lower', lower95, 'upper', upper95) as j
                         from forecasts f where f.model_id = m.id and f.instrument_id = i.id and f.horizon_days = 21
                         order by as_of desc limit 1) lf on true
    ), '[]'::json))) order by p.id)
    from (select * from portfolios where owner_id = u.id order by id limit 20) p
  ), '[]'::json))) end))::text as body
from (select $1::int as id) k
left join users u on u.id = k.id
left join forecast_models m on m.name = $2 and m.active`;

export interface DashboardSource {
  /** The answer's bytes for the bearer token of this request, or null when its credentials are bad. */
  answer(req: IncomingMessage): Promise<Buffer | null>;
  close(): Promise<void>;
}

export function dashboardSource(env: NodeJS.ProcessEnv): DashboardSource {
  const sql = postgres(env.DATABASE_URL!, { max: Number(env.DB_POOL_MAX ?? 10), onnotice: () => {} });
  const secret = env.JWT_SECRET!;
  const model = env.FORECAST_DEFAULT_MODEL ?? 'ewma';
  return {
    async answer(req) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const viewer = token ? await verifyToken(secret, token).catch(() => null) : null;
      if (viewer?.kind !== 'user') return null;
      const [row] = await sql.unsafe(DASHBOARD_JSON, [viewer.userId, model], { prepare: true });
      return Buffer.from(row.body as string);
    },
    close: () => sql.end(),
  };
}

/**
 * A bare node:http server: `GET /healthz`, and any other request answered by `answer` (its body is
 * read and ignored: every request is a dashboard), 401 when it gives null. Stops on SIGTERM.
 */
export function serveDashboards(name: string, port: number, answer: (req: IncomingMessage) => Promise<Buffer | null>, close: () => Promise<void>) {
  const server = createServer(async (req, res) => {
    try {
      if (req.url === '/healthz') return void res.end('ok');
      for await (const _ of req);
      const body = await answer(req);
      if (!body) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"message":"bad credentials"}]}');
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  server.listen(port, '127.0.0.1', () => process.stderr.write(`${name} listening on ${port}\n`));
  process.on('SIGTERM', () => server.close(() => void close().then(() => process.exit(0))));
}
