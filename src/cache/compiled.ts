import type { DocumentNode, ExecutionArgs } from 'graphql';
import { expandedSelections } from '../limits/selectionLimitRule.js';

export interface CompilePolicyOptions {
  /** A document runs compiled from its this-many-th execution on: one-off documents are not worth compiling. */
  minRuns?: number;
  /** Nor are documents past this many selections with their fragments written out (compiling writes them out). */
  maxSelections?: number;
}

/**
 * Which executions graphql-jit compiles: a document seen before (so a flood of distinct documents
 * costs what graphql-js's interpretation costs, not a compilation each) and of a size that compiles
 * fast (graphql-jit writes every fragment spread out, where graphql-js's field collection skips a
 * repeated spread: a document whose fragments spread each other twice would compile exponentially).
 * Counts are kept per document object (Apollo keeps one per distinct text), weakly.
 */
export function createCompilePolicy({ minRuns = 2, maxSelections = 2000 }: CompilePolicyOptions = {}) {
  const runs = new WeakMap<DocumentNode, number>();
  return (args: ExecutionArgs): boolean => {
    const seen = (runs.get(args.document) ?? 0) + 1;
    runs.set(args.document, seen);
    return seen >= minRuns && expandedSelections(args.document) <= maxSelections;
  };
}
