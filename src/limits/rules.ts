import type { ValidationRule } from 'graphql';
import type { Config } from '../config.js';
import { aliasLimitRule } from './aliasLimitRule.js';
import { depthLimitRule } from './depthLimitRule.js';
import { directiveLimitRule } from './directiveLimitRule.js';
import { noSubscriptionRule } from './noSubscriptionRule.js';
import { rootFieldLimitRule } from './rootFieldLimitRule.js';
import { selectionLimitRule } from './selectionLimitRule.js';

/** Every limit checked while validating a document: at request time, and when documents are published. */
export function limitRules(config: Pick<Config, 'limits'>): ValidationRule[] {
  return [
    selectionLimitRule(config.limits.maxSelections),
    depthLimitRule(config.limits.maxDepth),
    aliasLimitRule(config.limits.maxAliases),
    rootFieldLimitRule(config.limits.maxRootFields),
    directiveLimitRule(config.limits.maxDirectives),
    noSubscriptionRule,
  ];
}
