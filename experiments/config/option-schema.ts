/**
 * A trainer's option spec (train/option-spec.ts: doc line, default, rule per field) as a
 * config schema, so a recipe's schema derives from its trainer's options and defaults (one
 * source of truth, issue 13). What only a config knows (a machine-dependent bound) comes in
 * `overrides`, by key path.
 */
import type { GroupField, OptionField, OptionFields, OptionRule, OptionValues } from '../../train/index.js';
import { type Fields, type ObjectSchema, type Schema, s } from './schema.js';

/** The rule's bounds: int1 → an integer ≥ 1, pos → a number > 0, …; `d` undefined for a list's item. */
function numberSchema(
  f: { doc: string; rule: OptionRule; min?: number; max?: number },
  d: number | undefined,
): Schema<number> {
  const { doc, max } = f;
  const bounded = max === undefined ? {} : { max };
  switch (f.rule) {
    case 'int1':
    case 'int0':
      return s.integer({ doc, default: d, min: f.min ?? (f.rule === 'int1' ? 1 : 0), ...bounded });
    case 'int':
      return s.integer({ doc, default: d, min: f.min, ...bounded });
    case 'pos':
      return s.number({ doc, default: d, min: f.min ?? 0, exclusiveMin: f.min === undefined, ...bounded });
    case 'nonneg':
      return s.number({ doc, default: d, min: f.min ?? 0, ...bounded });
    case 'finite':
      return s.number({ doc, default: d, min: f.min, ...bounded });
  }
}

function fieldSchema(
  f: OptionField,
  path: string,
  overrides: Record<string, Schema<unknown>>,
): Schema<unknown> {
  const over = overrides[path];
  if (over) return over;
  if (f.kind === 'number') return numberSchema(f, f.default);
  if (f.kind === 'list') {
    const item = numberSchema({ doc: f.itemDoc, rule: f.rule }, undefined);
    const minLength = f.minLength > 0 ? { minLength: f.minLength } : {};
    return s.list(item, { doc: f.doc, default: [...f.default], ...minLength });
  }
  if (f.kind === 'choice') return s.enum(f.values, { doc: f.doc, default: f.default });
  if (f.kind === 'text')
    return s.string({ doc: f.doc, default: f.default, ...(f.nonEmpty ? { nonEmpty: true } : {}) });
  if (f.kind === 'flag') return s.boolean({ doc: f.doc, default: f.default });
  const fields: Fields = {};
  for (const [key, sub] of Object.entries(f.fields))
    fields[key] = fieldSchema(sub, path ? `${path}.${key}` : key, overrides);
  return s.object(fields, { doc: f.doc });
}

/** The schema of `spec`; `overrides` replaces fields by key path (`{ 'model.devices': s.integer(…) }`). */
export function optionSchema<F extends OptionFields>(
  spec: GroupField<F>,
  overrides: Record<string, Schema<unknown>> = {},
): ObjectSchema<OptionValues<GroupField<F>>> {
  for (const path of Object.keys(overrides))
    if (
      !path
        .split('.')
        .reduce<OptionField | undefined>((f, k) => (f?.kind === 'group' ? f.fields[k] : undefined), spec)
    )
      throw new Error(`optionSchema: override '${path}' names no option`);
  return fieldSchema(spec, '', overrides) as ObjectSchema<OptionValues<GroupField<F>>>;
}
