import {
  getDirectiveValues,
  getNamedType,
  getNullableType,
  isCompositeType,
  isListType,
  Kind,
  valueFromAST,
  valueFromASTUntyped,
  type DocumentNode,
  type FieldNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { walkSelections, type FieldsType } from './walker.js';

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
  /** The request's variables, with the operation's defaults for those it leaves out. */
  variables: Record<string, unknown>;
  slices: Slice[];
}

/** Field names of a selection set, with the size a parent connection gave them. */
type Sized = ReadonlyMap<string, number>;

interface ListSize {
  assumedSize?: number;
  slicingArguments?: string[];
  sizedFields?: string[];
}

/**
 * Static cost of an operation from the schema's @cost and @listSize directives, with variables
 * resolved: a field costs its weight (objects 1, scalars 0, unless @cost says otherwise) plus its
 * selections, and a list multiplies that by its size (the slicing argument, else assumedSize). A
 * connection's slicing argument sizes its `edges` and `nodes`. Fragments are followed (by the walker,
 * each priced once per place it lands); @skip and @include are ignored, so the estimate is an upper bound.
 */
export class CostEstimator {
  private readonly remembered = new WeakMap<OperationDefinitionNode, Map<string, CostEstimate>>();
  private readonly cost: ReturnType<GraphQLSchema['getDirective']>;
  private readonly listSize: ReturnType<GraphQLSchema['getDirective']>;
  private readonly defaultListSize: number;

  constructor(
    private readonly schema: GraphQLSchema,
    options: EstimateOptions = {},
  ) {
    this.cost = schema.getDirective('cost');
    this.listSize = schema.getDirective('listSize');
    this.defaultListSize = options.defaultListSize ?? 10;
  }

  /**
   * The estimate of an operation, remembered per parsed operation (Apollo hands the same document
   * object to every request with the same text) and variables: a dashboard asked every few seconds is
   * walked once. The estimate depends on nothing else (the schema is fixed). Variables longer than
   * 2,000 characters in JSON are not remembered; at most 50 sets per operation are.
   */
  estimate(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> = {}): CostEstimate {
    const text = JSON.stringify(variables);
    if (text.length > 2000) return this.walkEstimate(document, operation, variables);
    let known = this.remembered.get(operation);
    if (!known) this.remembered.set(operation, (known = new Map()));
    const hit = known.get(text);
    if (hit) return { cost: hit.cost, slices: [...hit.slices] };
    const estimate = this.walkEstimate(document, operation, variables);
    if (known.size >= 50) known.clear();
    known.set(text, { cost: estimate.cost, slices: [...estimate.slices] });
    return estimate;
  }

  private walkEstimate(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown>): CostEstimate {
    const root = this.schema.getRootType(operation.operation);
    const slices: Slice[] = [];
    if (!root) return { cost: 0, slices };
    // a variable the request leaves out takes its default from the operation
    const values: Record<string, unknown> = {};
    for (const v of operation.variableDefinitions ?? []) {
      if (v.defaultValue) values[v.variable.name.value] = valueFromASTUntyped(v.defaultValue);
    }
    Object.assign(values, variables);
    // A fragment's cost depends only on where it lands (its type, and the sizes a parent connection
    // gives its fields) and on the variables, fixed for the walk: the walker prices it once per place,
    // so its slices are recorded the first time (the caps need each slicing argument once).
    const walk: Walk = { variables: values, slices };
    const price = walkSelections<number, Sized>(this.schema, document, {
      empty: 0,
      add: (total, next) => total + next,
      contextKey: (sized) => [...sized].map(([field, size]) => `${field}=${size}`).join(','),
      field: (...visit) => this.field(walk, ...visit),
    });
    return { cost: price(operation.selectionSet, root, new Map()), slices };
  }

  /** `sized`: the sizes a parent connection gave this field and its siblings (`edges`, `nodes`). */
  private field(
    walk: Walk,
    node: FieldNode,
    def: GraphQLField<unknown, unknown>,
    parent: FieldsType,
    sized: Sized,
    children: (sized: Sized) => number,
  ): number {
    const name = node.name.value;
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
    const unit = weight + children(childSized);
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
