/**
 * The registered recipes: one entry per experiment kind. To add one, write a module exporting a
 * `Recipe` (see types.ts and toy.ts) and list it here; `recipe: <name>` in a config then selects it
 * and its section is validated by its schema.
 */
import { contextScalingRecipe } from './context-scaling.js';
import { lineRetrievalRecipe } from './line-retrieval.js';
import { ppoRecipe } from './ppo.js';
import { offlineRlRecipe } from './offline-rl.js';
import { shareGptFinetuneRecipe } from './sharegpt-finetune.js';
import { toyRecipe } from './toy.js';
import type { Recipe } from './types.js';

export const RECIPES: readonly Recipe<unknown>[] = [
  toyRecipe as Recipe<unknown>,
  contextScalingRecipe as Recipe<unknown>,
  ppoRecipe as Recipe<unknown>,
  offlineRlRecipe as Recipe<unknown>,
  shareGptFinetuneRecipe as Recipe<unknown>,
  lineRetrievalRecipe as Recipe<unknown>,
];

export function recipeNames(): string[] {
  return RECIPES.map((r) => r.name);
}

export function recipeByName(name: string): Recipe<unknown> | undefined {
  return RECIPES.find((r) => r.name === name);
}

export type { Recipe, RecipeContext } from './types.js';
