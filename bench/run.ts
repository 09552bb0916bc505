// `npm run bench -- NAME [options]`: one entry point for the benchmarks in this folder.
//
//   npm run bench -- --help
//   npm run bench -- dashboard --seconds 5
const BENCHMARKS: Record<string, { about: string; run: (args: string[]) => Promise<unknown> }> = {
  dashboard: {
    about: 'the side-by-side dashboard benchmark: the SQL floor, PostGraphile v5, foliograph uncached and cached, a bare LRU server; ratios from one run',
    run: async (args) => (await import('./dashboard.js')).dashboardBenchmark(args),
  },
  cache: {
    about: 'the surge replayed against foliograph with caching off and on (also npm run bench:cache)',
    run: (args) => script('./cache-surge.js', args),
  },
  incident: {
    about: 'the surge against the naive N+1 design, batching only, and full foliograph on one database; ratios of throughput, p99 and SQL/request',
    run: async (args) => (await import('./incident.js')).incidentBenchmark(args),
  },
  forecasts: {
    about: "how honest each forecasting model's intervals are on the demo series (also npm run bench:forecasts)",
    run: (args) => script('./forecast-calibration.js', args),
  },
};

/** The older benchmarks read their options from process.argv and run as they are imported. */
function script(path: string, args: string[]) {
  process.argv = [process.argv[0], path, ...args];
  return import(path);
}

const help = () =>
  `npm run bench -- NAME [options]   (NAME --help for a benchmark's options)\n\n${Object.entries(BENCHMARKS)
    .map(([name, b]) => `  ${name.padEnd(10)} ${b.about}`)
    .join('\n')}\n`;

const [name, ...args] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h') {
  process.stdout.write(help());
} else if (!BENCHMARKS[name]) {
  process.stderr.write(`unknown benchmark ${name}\n\n${help()}`);
  process.exitCode = 2;
} else {
  BENCHMARKS[name].run(args).catch((e) => {
    process.stderr.write(`bench ${name} failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
