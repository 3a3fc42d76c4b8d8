/**
 * Options described once: each field's doc line, its default (the trainer's DEFAULTS) and the rule
 * its value follows. The trainers' callers read it as data: experiments/ turns it into the
 * recipe's config schema (one source of truth for docs, defaults and bounds, issue 13), a script
 * reads the docs. `OptionValues` is the plain options object a spec describes.
 */
import type { OptionRule } from './common.js';

export interface NumberField {
  readonly kind: 'number';
  readonly doc: string;
  readonly default: number;
  readonly rule: OptionRule;
  /** A larger lower bound than the rule's (the rule's kind of number still holds). */
  readonly min?: number;
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
  | ChoiceField<string>
  | TextField
  | FlagField
  | GroupField<OptionFields>;
export type OptionFields = { readonly [key: string]: OptionField };

/** The options object a field describes: `{ train: { steps: number, … }, algo: 'at' | 'dt' | 'bc', … }`. */
export type OptionValues<F> = F extends NumberField
  ? number
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
  number: (doc: string, d: number, rule: OptionRule, min?: number): NumberField => ({
    kind: 'number',
    doc,
    default: d,
    rule,
    min,
  }),
  choice: <E extends string>(doc: string, values: readonly E[], d: E): ChoiceField<E> => ({
    kind: 'choice',
    doc,
    default: d,
    values,
  }),
  text: (doc: string, d: string): TextField => ({ kind: 'text', doc, default: d }),
  flag: (doc: string, d: boolean): FlagField => ({ kind: 'flag', doc, default: d }),
  group: <F extends OptionFields>(doc: string, fields: F): GroupField<F> => ({ kind: 'group', doc, fields }),
};
