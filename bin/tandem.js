#!/usr/bin/env node
// The `tandem` command. Tandem ships as TypeScript run through tsx, so a checkout, `npm run tandem`
// and a global `npm install -g .` all run the same source with no build step to forget.
import { register } from "tsx/esm/api";

register();
const { run } = await import("../src/cli/main.ts");
await run(process.argv);
