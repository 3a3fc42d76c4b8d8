#!/usr/bin/env node
// Entry point of the `exp` command. The TypeScript sources are compiled to dist/ by `npm install`
// (the `prepare` script); this file only forwards to the compiled CLI.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/experiments/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(
    'exp: dist/ is missing; run `npm install` (or `npm run build`) in the repository root first\n',
  );
  process.exit(2);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
