// `node --import <this file> …` appends the URL of every ES module the process loads to the file
// named by $TANDEM_MODULE_LOG, one a line: how tests see which of our modules a command loads.
// Plain JavaScript so that it runs before (and without) tsx.
import { appendFileSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

/** Set in the loader's thread by `initialize`. */
let logPath;

if (isMainThread && process.env.TANDEM_MODULE_LOG !== undefined) {
  const path = process.env.TANDEM_MODULE_LOG;
  register(import.meta.url, { data: path });
  // Node's own modules never pass the hook: at exit, the internal ones the process loaded (such
  // as `NativeModule internal/deps/undici/undici`, what `fetch` loads), each as `builtin:<entry>`.
  process.on("exit", () =>
    appendFileSync(path, process.moduleLoadList.map((entry) => `builtin:${entry}\n`).join("")),
  );
}

export function initialize(path) {
  logPath = path;
}

export async function load(url, context, nextLoad) {
  appendFileSync(logPath, url + "\n");
  return nextLoad(url, context);
}
