/**
 * Options described once: each field's doc line, its default (the trainer's DEFAULTS) and the rule
 * its value follows, declared next to the trainers' DEFAULTS in rl/ and lm/ (here in train/ so
 * both can). The trainers' callers read it as data: experiments/ turns it into the
 * recipe's config schema (one source of truth for docs, defaults and bounds, issue 13), a script
 * reads the docs. `OptionValues` is the plain options object a spec describes.
 */

/** What a number option's value must be: an integer ≥ 1 or ≥ 0 or any integer, a number > 0 or ≥ 0, any finite number. */
export type OptionRule = 'int1' | 'int0' | 'int' | 'pos' | 'nonneg' | 'finite';

export interface NumberField {
  readonly kind: 'number';
  readonly doc: string;
  readonly default: number;
  readonly rule: OptionRule;
  /** A larger lower bound than the rule's (the rule's kind of number still holds). */
  readonly min?: number;
  /** An upper bound (inclusive): a fraction's 1. */
  readonly max?: number;
}

/** A list of numbers, each following `rule`: `[1, 2, 4]` line counts, `[64, 64]` hidden sizes. */
export interface ListField {
  readonly kind: 'list';
  readonly doc: string;
  readonly default: readonly number[];
  /** The doc line of one item. */
  readonly itemDoc: string;
  readonly rule: OptionRule;
  /** At least this many items (0: the empty list is allowed). */
  readonly minLength: number;
}

export interface ChoiceField<E extends string> {
  readonly kind: 'choice';
  readonly doc: string;
  readonly default: E;
  readonly values: readonly E[];
}

export interface TextField {
  readonly kind: 'text';
  readonly doc: string;
  readonly default: string;
  /** The empty string is refused. */
  readonly nonEmpty?: boolean;
}

export interface GroupField<F extends OptionFields> {
  readonly kind: 'group';
  readonly doc: string;
  readonly fields: F;
}

export interface FlagField {
  readonly kind: 'flag';
  readonly doc: string;
  readonly default: boolean;
}

export type OptionField =
  | NumberField
  | ListField
  | ChoiceField<string>
  | TextField
  | FlagField
  | GroupField<OptionFields>;
export type OptionFields = { readonly [key: string]: OptionField };

/** The options object a field describes: `{ train: { steps: number, … }, algo: 'at' | 'dt' | 'bc', … }`. */
export type OptionValues<F> = F extends NumberField
  ? number
  : F extends ListField
    ? number[]
    : F extends ChoiceField<infer E>
      ? E
      : F extends TextField
        ? string
        : F extends FlagField
          ? boolean
          : F extends GroupField<infer G>
            ? { -readonly [K in keyof G]: OptionValues<G[K]> }
            : never;

/** Builders, so a spec reads as a list of documented fields. */
export const opt = {
  number: (doc: string, d: number, rule: OptionRule, min?: number, max?: number): NumberField => ({
    kind: 'number',
    doc,
    default: d,
    rule,
    min,
    max,
  }),
  list: (doc: string, d: readonly number[], itemDoc: string, rule: OptionRule, minLength = 0): ListField => ({
    kind: 'list',
    doc,
    default: d,
    itemDoc,
    rule,
    minLength,
  }),
  choice: <E extends string>(doc: string, values: readonly E[], d: E): ChoiceField<E> => ({
    kind: 'choice',
    doc,
    default: d,
    values,
  }),
  text: (doc: string, d: string, nonEmpty?: boolean): TextField => ({
    kind: 'text',
    doc,
    default: d,
    nonEmpty,
  }),
  flag: (doc: string, d: boolean): FlagField => ({ kind: 'flag', doc, default: d }),
  group: <F extends OptionFields>(doc: string, fields: F): GroupField<F> => ({ kind: 'group', doc, fields }),
};
