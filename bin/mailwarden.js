#!/usr/bin/env node
// The published entry point: the compiled CLI (run `npm run build` first in a checkout).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
