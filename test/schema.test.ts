import { isEnumType, isInputObjectType, isObjectType, isScalarType, type GraphQLSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { buildSchema } from '../src/graphql/schema.js';

// Sandbox shows descriptions: every type, field, argument and enum value of ours must have one.
function undocumented(schema: GraphQLSchema): string[] {
  const missing: string[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith('__') || (isScalarType(type) && ['String', 'Int', 'Float', 'Boolean', 'ID'].includes(type.name))) continue;
    if (!type.description?.trim()) missing.push(type.name);
    if (isObjectType(type) || isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) {
        if (!field.description?.trim()) missing.push(`${type.name}.${field.name}`);
        for (const arg of 'args' in field ? field.args : []) {
          if (!arg.description?.trim()) missing.push(`${type.name}.${field.name}(${arg.name})`);
        }
      }
    }
    if (isEnumType(type)) {
      for (const value of type.getValues()) if (!value.description?.trim()) missing.push(`${type.name}.${value.name}`);
    }
  }
  return missing;
}

describe('schema', () => {
  const schema = buildSchema();

  it('describes every type, field, argument and enum value', () => {
    expect(undocumented(schema)).toEqual([]);
  });

  it("has the contract's entry points and money as Decimal", () => {
    const query = schema.getQueryType()!.getFields();
    expect(Object.keys(query)).toEqual(expect.arrayContaining(['viewer', 'portfolio', 'portfolios', 'instrument', 'instruments']));
    expect(Object.keys(schema.getMutationType()!.getFields())).toEqual(expect.arrayContaining(['createPortfolio', 'recordTrade']));
    const position = schema.getType('Position');
    if (!isObjectType(position)) throw new Error('Position is not an object type');
    for (const name of ['quantity', 'averageCost', 'marketValue', 'unrealizedPnl']) {
      expect(String(position.getFields()[name].type)).toMatch(/^Decimal!?$/);
    }
  });
});
