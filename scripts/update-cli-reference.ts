// Regenerates the CLI reference in README.md from the command tree (`npm run docs:cli`).
import { readFile, writeFile } from "node:fs/promises";
import { buildProgram } from "../src/cli/main.ts";
import { cliReference, withReference } from "../src/cli/reference.ts";

const path = new URL("../README.md", import.meta.url);
const readme = await readFile(path, "utf8");
await writeFile(path, withReference(readme, cliReference(await buildProgram())));
