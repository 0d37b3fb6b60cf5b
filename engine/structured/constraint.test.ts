// checkJsonSchema on its own (no GPU): property names are data, not keywords.
import { describe, expect, it } from 'vitest';
import { checkJsonSchema } from './constraint.ts';

describe('checkJsonSchema', () => {
  it('accepts properties named like keywords (type, pattern, enum, $ref)', () => {
    const schema = {
      type: 'object',
      properties: {
        type: { type: 'string', enum: ['service', 'error_code'] },
        pattern: { type: 'string' },
        enum: { type: 'integer' },
        $ref: { type: 'boolean' },
        entities: { type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, text: { type: 'string' } }, required: ['type', 'text'] } },
      },
      required: ['type'],
      $defs: { type: { type: 'number' } },
    };
    expect(checkJsonSchema(schema, 'response_format')).toBe(schema);
  });
  it('still rejects a bad type inside a property, naming its path', () => {
    expect(() => checkJsonSchema({ type: 'object', properties: { type: { type: 'bogus' } } }, 'guided_json')).toThrow(/guided_json\.properties\.type\.type: unsupported type "bogus"|not a valid JSON schema/);
    expect(() => checkJsonSchema({ $defs: { a: { type: 'integer', minimum: 3, maximum: 1 } } }, 'guided_json')).toThrow(/minimum 3 is greater than maximum 1/);
  });
});
