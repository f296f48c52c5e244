#!/usr/bin/env node
// The `tandem` command. It runs the JavaScript that `npm run build` compiled into dist/ (built on
// install, by `prepare`) while that build is current, and otherwise src/ itself through tsx: a
// checkout with no build still works, and an edited source never runs stale (bin/entry.js says how
// it tells). TANDEM_FROM_SOURCE=1 always runs src/.
import { compiledEntry } from "./entry.js";

const root = new URL("../", import.meta.url);
let main = process.env.TANDEM_FROM_SOURCE === "1" ? undefined : compiledEntry(root);
if (main === undefined) {
  const { register } = await import("tsx/esm/api");
  register();
  main = new URL("src/cli/main.ts", root);
}
const { run } = await import(main.href);
await run(process.argv);
