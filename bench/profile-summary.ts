// A V8 CPU profile (`node --cpu-prof`, a .cpuprofile JSON file) summed by package: where the time of
// a server under load went, self and inclusive.
import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of a .cpuprofile read here (Chrome DevTools protocol, Profiler.Profile). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber?: number }; children?: number[] }[];
  /** Microseconds, on the same monotonic clock as `process.hrtime` on Linux. */
  startTime: number;
  endTime: number;
  /** The node sampled at each tick. */
  samples: number[];
  /** Microseconds since the previous sample (the first: since startTime). */
  timeDeltas: number[];
}

export interface PackageTime {
  name: string;
  /** Microseconds with this package's code on top of the stack. */
  self: number;
  /** Microseconds with this package's code anywhere on the stack (counted once per sample). */
  inclusive: number;
}

export interface FunctionTime {
  name: string;
  pkg: string;
  /** The nearest package on its stack that is not Node's or V8's (who made a socket write, say); `–` when none. */
  under: string;
  self: number;
}

export interface ProfileSummary {
  /** Microseconds of samples summed (the window's, when one was given). */
  total: number;
  /** Of which idle: the event loop waiting. */
  idle: number;
  samples: number;
  /** Largest self time first. */
  packages: PackageTime[];
  functions: FunctionTime[];
}

const PSEUDO = new Set(['(program)', '(garbage collector)', '(idle)', '(root)']);
/** Frames that do work for whoever called them. */
const RUNTIME = new Set([...PSEUDO, '(native)', 'node internals']);

/**
 * What a frame belongs to: `node_modules/<pkg>` (scoped names whole, the innermost node_modules), our
 * own code by folder (`src/http`, the built `dist/` counted as `src/`), `node internals` (`node:`
 * modules), V8's pseudo-frames as they are named, `(native)` for code without a script (V8 builtins
 * such as JSON.stringify, C++ bindings such as a socket's writeBuffer).
 */
export function packageOf(url: string, functionName: string, projectRoot: string): string {
  if (!url) return PSEUDO.has(functionName) ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const modules = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (modules >= 0) {
    const parts = path.slice(modules + `${sep}node_modules${sep}`.length).split(sep);
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const inProject = relative(projectRoot, path);
  if (inProject.startsWith('..') || inProject === path) return 'other';
  const parts = inProject.split(sep);
  if (parts[0] === 'dist' || parts[0] === 'src') return parts.length > 2 ? `src/${parts[1]}` : 'src/';
  return parts.length > 1 ? `${parts[0]}/` : inProject;
}

/**
 * Sums a profile by package. A sample lasts until the next one (the last until `endTime`), as DevTools
 * counts it. With `window` (start and end in the profile's microseconds), only samples taken inside
 * it count: the load, without start-up.
 */
export function summariseProfile(profile: CpuProfile, projectRoot: string, window?: { start: number; end: number }): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const pkgOf = new Map(profile.nodes.map((n) => [n.id, packageOf(n.callFrame.url, n.callFrame.functionName, projectRoot)]));

  // the packages on each node's stack, root excluded, made once per node
  const stacks = new Map<number, Set<string>>();
  const stackOf = (id: number): Set<string> => {
    const known = stacks.get(id);
    if (known) return known;
    const up = parent.get(id);
    const set = new Set(up === undefined ? [] : stackOf(up));
    if (pkgOf.get(id) !== '(root)') set.add(pkgOf.get(id)!);
    stacks.set(id, set);
    return set;
  };

  const owners = new Map<number, string>();
  const ownerOf = (id: number): string => {
    const known = owners.get(id);
    if (known) return known;
    const up = parent.get(id);
    const owner = !RUNTIME.has(pkgOf.get(id)!) ? pkgOf.get(id)! : up === undefined ? '–' : ownerOf(up);
    owners.set(id, owner);
    return owner;
  };

  const packages = new Map<string, PackageTime>();
  const functions = new Map<string, FunctionTime>();
  const pkg = (name: string) => packages.get(name) ?? packages.set(name, { name, self: 0, inclusive: 0 }).get(name)!;
  let total = 0;
  let idle = 0;
  let counted = 0;
  const times: number[] = [];
  let t = profile.startTime;
  for (const delta of profile.timeDeltas) times.push((t += delta));
  for (let i = 0; i < profile.samples.length; i++) {
    const at = times[i];
    if (window && (at < window.start || at >= window.end)) continue;
    const duration = Math.max(0, (i + 1 < times.length ? times[i + 1] : profile.endTime) - at);
    const id = profile.samples[i];
    const name = pkgOf.get(id) ?? '(unknown)';
    counted++;
    total += duration;
    if (name === '(idle)') idle += duration;
    pkg(name).self += duration;
    for (const p of stackOf(id)) pkg(p).inclusive += duration;
    const frame = byId.get(id)?.callFrame;
    if (frame && !PSEUDO.has(frame.functionName)) {
      const where = frame.url
        ? `${frame.functionName || '(anonymous)'} ${frame.url.split('/').pop()}:${(frame.lineNumber ?? 0) + 1}`
        : frame.functionName || '(anonymous)';
      const under = ownerOf(id);
      const key = `${where}\u0000${under}`;
      const fn = functions.get(key) ?? functions.set(key, { name: where, pkg: name, under, self: 0 }).get(key)!;
      fn.self += duration;
    }
  }
  return {
    total,
    idle,
    samples: counted,
    packages: [...packages.values()].sort((a, b) => b.self - a.self || b.inclusive - a.inclusive),
    functions: [...functions.values()].sort((a, b) => b.self - a.self),
  };
}

/** The summary as markdown tables: shares of the busy (not idle) time. */
export function formatProfileSummary(s: ProfileSummary, topPackages = 25, topFunctions = 15): string {
  const busy = s.total - s.idle || 1;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1)}%`;
  const lines = [
    `${(s.total / 1e6).toFixed(1)} s sampled (${s.samples} samples), busy ${(busy / 1e6).toFixed(1)} s, idle ${((100 * s.idle) / (s.total || 1)).toFixed(0)}%; shares below are of the busy time`,
    '',
    '| package | self | inclusive |',
    '| --- | ---: | ---: |',
    ...s.packages
      .filter((p) => p.name !== '(idle)')
      .slice(0, topPackages)
      .map((p) => `| ${p.name} | ${pct(p.self)} | ${pct(p.inclusive)} |`),
    '',
    '| function (self time) | package | under | self |',
    '| --- | --- | --- | ---: |',
    ...s.functions.slice(0, topFunctions).map((f) => `| \`${f.name}\` | ${f.pkg} | ${f.under === f.pkg ? '' : f.under} | ${pct(f.self)} |`),
  ];
  return lines.join('\n');
}
