import { getArgumentValues, isObjectType, Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';
import { isId, readPage } from '../domain/pagination.js';
import type { ViewerPortfolioPage } from '../loaders/users.js';

/** The fields of a selection set by name, fragments (inline and spread) followed once each. */
function fieldsNamed(set: SelectionSetNode | undefined, name: string, info: GraphQLResolveInfo, seen = new Set<string>()): FieldNode[] {
  const found: FieldNode[] = [];
  for (const selection of set?.selections ?? []) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value === name) found.push(selection);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      found.push(...fieldsNamed(selection.selectionSet, name, info, seen));
    } else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      found.push(...fieldsNamed(info.fragments[selection.name.value]?.selectionSet, name, info, seen));
    }
  }
  return found;
}

const under = (fields: readonly FieldNode[], name: string, info: GraphQLResolveInfo) => fields.flatMap((f) => fieldsNamed(f.selectionSet, name, info));

/**
 * The horizons at which a positions connection's result asks each instrument's latest forecast
 * (`nodes { instrument { latestForecast(horizonDays:) } }`, or through `edges { node }`), variables
 * resolved and the argument's default applied: so the positions can be loaded with them, in one
 * statement. A value that is not a whole number is left out (the field's own resolver refuses it).
 */
export function positionForecastHorizons(info: GraphQLResolveInfo, defaultHorizon: number): number[] {
  const nodes = [...under(info.fieldNodes, 'nodes', info), ...under(under(info.fieldNodes, 'edges', info), 'node', info)];
  const horizons = new Set<number>();
  for (const forecast of under(under(nodes, 'instrument', info), 'latestForecast', info)) {
    const argument = forecast.arguments?.find((a) => a.name.value === 'horizonDays')?.value;
    const value =
      argument === undefined
        ? defaultHorizon
        : argument.kind === Kind.INT
          ? Number(argument.value)
          : argument.kind === Kind.VARIABLE
            ? (info.variableValues[argument.name.value] ?? defaultHorizon)
            : null;
    if (typeof value === 'number' && Number.isInteger(value)) horizons.add(value);
  }
  return [...horizons];
}

/**
 * The pages of `viewer { portfolios(first:, after:) }` this field's result will ask, arguments coerced
 * as the field's own resolver will coerce them (one it would refuse is left out: it refuses it
 * itself), and whether each asks `totalCount`: so the viewer can be loaded with its page, in one statement.
 */
export function viewerPortfolioPages(info: GraphQLResolveInfo): ViewerPortfolioPage[] {
  const user = info.schema.getType('User');
  const field = isObjectType(user) ? user.getFields().portfolios : undefined;
  if (!field) return [];
  const pages: ViewerPortfolioPage[] = [];
  for (const node of under(info.fieldNodes, 'portfolios', info)) {
    try {
      const { first, after } = readPage('portfolios', getArgumentValues(field, node, info.variableValues), 20, isId);
      pages.push({ first, after, count: fieldsNamed(node.selectionSet, 'totalCount', info).length > 0 });
    } catch {
      /* the resolver answers its own refusal */
    }
  }
  return pages;
}
