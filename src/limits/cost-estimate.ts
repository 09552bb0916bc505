import {
  getDirectiveValues,
  getNamedType,
  getNullableType,
  isCompositeType,
  isListType,
  isObjectType,
  Kind,
  valueFromAST,
  valueFromASTUntyped,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

/** A list size the estimate took from a slicing argument: where, and how many. */
export interface Slice {
  /** Schema coordinate of the field, such as `Portfolio.positions`. */
  coordinate: string;
  argument: string;
  value: number;
}

export interface CostEstimate {
  /** Estimated units of database work for the whole operation. */
  cost: number;
  /** Every slicing argument the operation used, with its value (variables resolved). */
  slices: Slice[];
}

export interface EstimateOptions {
  /** Items a list field is assumed to return when nothing says otherwise. */
  defaultListSize?: number;
}

/** What one estimate carries through its walk. */
interface Walk {
  fragments: Map<string, FragmentDefinitionNode>;
  /** The request's variables, with the operation's defaults for those it leaves out. */
  variables: Record<string, unknown>;
  slices: Slice[];
  /** Fragments being priced further up: a spread of one of them is a cycle. */
  visiting: Set<string>;
  /** Fragments already priced, by name, type and the sizes given to their fields. */
  priced: Map<string, number>;
}

interface ListSize {
  assumedSize?: number;
  slicingArguments?: string[];
  sizedFields?: string[];
}

/**
 * Static cost of an operation from the schema's @cost and @listSize directives, with variables
 * resolved: a field costs its weight (objects 1, scalars 0, unless @cost says otherwise) plus its
 * selections, and a list multiplies that by its size (the slicing argument, else assumedSize). A
 * connection's slicing argument sizes its `edges` and `nodes`. Fragments are followed; @skip and
 * @include are ignored, so the estimate is an upper bound.
 */
export class CostEstimator {
  private readonly cost: ReturnType<GraphQLSchema['getDirective']>;
  private readonly listSize: ReturnType<GraphQLSchema['getDirective']>;
  private readonly defaultListSize: number;

  constructor(private readonly schema: GraphQLSchema, options: EstimateOptions = {}) {
    this.cost = schema.getDirective('cost');
    this.listSize = schema.getDirective('listSize');
    this.defaultListSize = options.defaultListSize ?? 10;
  }

  estimate(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> = {}): CostEstimate {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    const root =
      operation.operation === 'mutation' ? this.schema.getMutationType() : operation.operation === 'subscription' ? this.schema.getSubscriptionType() : this.schema.getQueryType();
    const slices: Slice[] = [];
    if (!root) return { cost: 0, slices };
    // a variable the request leaves out takes its default from the operation
    const values: Record<string, unknown> = {};
    for (const v of operation.variableDefinitions ?? []) {
      if (v.defaultValue) values[v.variable.name.value] = valueFromASTUntyped(v.defaultValue);
    }
    Object.assign(values, variables);
    const cost = this.selectionSet(operation.selectionSet, root, { fragments, variables: values, slices, visiting: new Set(), priced: new Map() }, new Map());
    return { cost, slices };
  }

  /** `sized` maps field names of this selection set to the size a parent connection gave them. */
  private selectionSet(set: SelectionSetNode, parent: GraphQLNamedType, walk: Walk, sized: Map<string, number>): number {
    let total = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        total += this.field(selection, parent, walk, sized);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? this.schema.getType(selection.typeCondition.name.value) ?? parent : parent;
        total += this.selectionSet(selection.selectionSet, type, walk, sized);
      } else {
        total += this.fragment(selection.name.value, parent, walk, sized);
      }
    }
    return total;
  }

  /**
   * A fragment's cost depends only on where it lands (its type, and the sizes a parent connection
   * gives its fields) and on the variables, fixed for the walk: each is priced once per place, so a
   * fragment spread a thousand times, or one that spreads the next twice at every level, costs one
   * walk. Its slices are recorded the first time; the caps need each slicing argument once.
   */
  private fragment(name: string, parent: GraphQLNamedType, walk: Walk, sized: Map<string, number>): number {
    const fragment = walk.fragments.get(name);
    if (!fragment || walk.visiting.has(name)) return 0; // unknown or cyclic: validation reports it
    const type = this.schema.getType(fragment.typeCondition.name.value) ?? parent;
    const key = `${name}\u0000${type.name}\u0000${[...sized].map(([field, size]) => `${field}=${size}`).join(',')}`;
    const known = walk.priced.get(key);
    if (known !== undefined) return known;
    walk.visiting.add(name);
    const cost = this.selectionSet(fragment.selectionSet, type, walk, sized);
    walk.visiting.delete(name);
    walk.priced.set(key, cost);
    return cost;
  }

  private field(node: FieldNode, parent: GraphQLNamedType, walk: Walk, sized: Map<string, number>): number {
    if (!isObjectType(parent) && !('getFields' in parent)) return 0;
    const name = node.name.value;
    if (name === '__typename') return 0;
    const def = (parent as { getFields(): Record<string, GraphQLField<unknown, unknown>> }).getFields()[name];
    if (!def) return 0; // validation reports unknown fields
    const named = getNamedType(def.type);
    const coordinate = `${parent.name}.${name}`;
    const weight = this.weightOf(def, named);
    const args = this.argumentValues(def, node, walk.variables);
    const listSize = this.listSize && def.astNode ? (getDirectiveValues(this.listSize, def.astNode) as ListSize | undefined) : undefined;

    let sliced: number | undefined;
    for (const argument of listSize?.slicingArguments ?? []) {
      // an explicit null reads as the argument's default, as the resolvers read it (first ?? fallback)
      const value = args[argument] ?? def.args.find((a) => a.name === argument)?.defaultValue;
      if (typeof value === 'number' && Number.isFinite(value)) {
        sliced = Math.max(0, value);
        walk.slices.push({ coordinate, argument, value });
      }
    }
    const childSized = new Map<string, number>();
    if (listSize?.sizedFields?.length) {
      const size = sliced ?? listSize.assumedSize ?? this.defaultListSize;
      for (const f of listSize.sizedFields) childSized.set(f, size);
    }
    const children = node.selectionSet && isCompositeType(named) ? this.selectionSet(node.selectionSet, named, walk, childSized) : 0;
    const unit = weight + children;
    if (!isListType(getNullableType(def.type))) return unit;
    const size = sized.get(name) ?? (listSize?.sizedFields?.length ? undefined : sliced) ?? listSize?.assumedSize ?? this.defaultListSize;
    return size * unit;
  }

  private weightOf(def: GraphQLField<unknown, unknown>, named: GraphQLNamedType): number {
    const own = this.cost && def.astNode ? (getDirectiveValues(this.cost, def.astNode) as { weight: number } | undefined) : undefined;
    if (own) return own.weight;
    const typeNode = named.astNode;
    const ofType = this.cost && typeNode && 'directives' in typeNode ? (getDirectiveValues(this.cost, typeNode) as { weight: number } | undefined) : undefined;
    if (ofType) return ofType.weight;
    return isCompositeType(named) ? 1 : 0;
  }

  /** Argument values with variables resolved and defaults applied; values that do not coerce are left out. */
  private argumentValues(def: GraphQLField<unknown, unknown>, node: FieldNode, variables: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const arg of def.args) {
      const given = node.arguments?.find((a) => a.name.value === arg.name);
      if (!given) {
        if (arg.defaultValue !== undefined) out[arg.name] = arg.defaultValue;
        continue;
      }
      if (given.value.kind === Kind.VARIABLE) {
        const v = variables[given.value.name.value];
        out[arg.name] = v === undefined ? arg.defaultValue : v;
      } else {
        out[arg.name] = valueFromAST(given.value, arg.type, variables);
      }
    }
    return out;
  }
}
