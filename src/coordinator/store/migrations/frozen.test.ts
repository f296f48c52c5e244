import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import ts from "typescript";
import { migrationProvider } from "./index.ts";

/**
 * Migrations are frozen: a database that ran one keeps what it did, so a fresh database must get
 * the same. Each file's SHA-256 is in checksums.json, and a migration imports nothing whose later
 * change could change what it does (index.ts's header says how to add one).
 */
const DIR = import.meta.dirname;
const MANIFEST = "checksums.json";
const MIGRATION_FILE = /^\d{4}-[a-z0-9-]+\.ts$/;
/** Not a migration, but migrations run it: frozen with them. */
const HELPERS = ["dialect-types.ts"];

type Manifest = Record<string, string>;

function frozenFiles(): Map<string, Buffer> {
  const names = readdirSync(DIR).filter((f) => MIGRATION_FILE.test(f) || HELPERS.includes(f));
  return new Map(names.sort().map((f) => [f, readFileSync(join(DIR, f))]));
}

function sha256(content: Buffer | string): string {
  return createHash("sha256").update(content).digest("hex");
}

/** What differs between the files and the manifest, one sentence per file. */
function checksumProblems(files: ReadonlyMap<string, Buffer | string>, manifest: Manifest) {
  const fix = "fixes go in a new migration";
  const problems: string[] = [];
  for (const [file, content] of files) {
    const listed = manifest[file];
    const actual = sha256(content);
    if (listed === undefined)
      problems.push(
        `${file} has no entry in ${MANIFEST}: a new migration adds "${file}": "${actual}" there; ` +
          `an old one is never renamed, ${fix}`,
      );
    else if (listed !== actual)
      problems.push(
        `${file} was changed (SHA-256 ${actual}, ${MANIFEST} says ${listed}): databases that ran ` +
          `it keep what it did, so undo the change; ${fix}`,
      );
  }
  for (const file of Object.keys(manifest))
    if (!files.has(file))
      problems.push(
        `${file} is listed in ${MANIFEST} but missing: databases that ran it keep what it did, ` +
          `so restore it; ${fix}`,
      );
  return problems;
}

/**
 * Modules a migration may import: kysely, the dialect-types helper (frozen too), and the `Dialect`
 * type (types are erased: no behaviour to change).
 */
const ALLOWED: Record<string, "any" | "types"> = {
  kysely: "any",
  "./dialect-types.ts": "any",
  "../database.ts": "types",
};

/** `import type` / `export type` only: `import { type X }` still loads the module. */
function typeOnly(node: ts.ImportDeclaration | ts.ExportDeclaration): boolean {
  return ts.isExportDeclaration(node) ? node.isTypeOnly : node.importClause?.isTypeOnly === true;
}

/** The imports of `source` a migration may not have, as "file: what". */
function disallowedImports(file: string, source: string): string[] {
  const sourceFile = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const from = node.moduleSpecifier.text;
      const allowed = ALLOWED[from];
      if (allowed === undefined || (allowed === "types" && !typeOnly(node)))
        found.push(
          `${file}: ${allowed === undefined ? "imports" : "imports values from"} "${from}"`,
        );
    } else if (ts.isImportEqualsDeclaration(node)) {
      found.push(`${file}: imports "${node.moduleReference.getText(sourceFile)}" by require`);
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === "require"))
    ) {
      found.push(
        `${file}: loads ${node.arguments[0]?.getText(sourceFile) ?? "a module"} at run time`,
      );
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return found;
}

describe("frozen migrations", () => {
  test("every migration file matches its checksum in checksums.json", () => {
    const manifest = JSON.parse(readFileSync(join(DIR, MANIFEST), "utf8")) as Manifest;
    assert.deepEqual(checksumProblems(frozenFiles(), manifest), []);
  });

  test("a changed, removed or unlisted migration is named, with where fixes go", () => {
    const files = new Map([
      ["0001-a.ts", "create table a"],
      ["0002-b.ts", "create table b"],
    ]);
    const manifest = {
      "0001-a.ts": sha256("create table a"),
      "0002-b.ts": sha256("create table b"),
    };
    assert.deepEqual(checksumProblems(files, manifest), []);

    const changed = checksumProblems(
      new Map([...files, ["0002-b.ts", "create table bb"]]),
      manifest,
    );
    assert.equal(changed.length, 1);
    assert.match(changed[0]!, /^0002-b\.ts was changed .*fixes go in a new migration$/);

    const removed = checksumProblems(new Map([...files].slice(0, 1)), manifest);
    assert.equal(removed.length, 1);
    assert.match(
      removed[0]!,
      /^0002-b\.ts is listed in checksums\.json but missing.*fixes go in a new migration$/,
    );

    const added = checksumProblems(new Map([...files, ["0003-c.ts", "x"]]), manifest);
    assert.equal(added.length, 1);
    assert.match(
      added[0]!,
      new RegExp(`^0003-c\\.ts has no entry.*"0003-c\\.ts": "${sha256("x")}"`),
    );
  });

  test("migrations import only kysely, the dialect-types helper and the Dialect type", () => {
    const found = [...frozenFiles()].flatMap(([file, content]) =>
      disallowedImports(file, content.toString("utf8")),
    );
    assert.deepEqual(found, []);
  });

  test("an import of live code or of another migration is named", () => {
    const source = [
      `import { sql, type Kysely } from "kysely";`,
      `import type { Dialect } from "../database.ts";`,
      `import { type Store } from "../database.ts";`,
      `import { dialectTypes } from "./dialect-types.ts";`,
      `import { DEFAULT_CATALOG_PRICES } from "../../../core/pricing.ts";`,
      `import { OVERDRAWN } from "./0003-ledger.ts";`,
      `import { openStore } from "../database.ts";`,
      `import "./side-effect.ts";`,
      `export { GUARDED } from "./0003-ledger.ts";`,
      `const later = () => import("../schema.ts");`,
    ].join("\n");
    assert.deepEqual(disallowedImports("0099-x.ts", source), [
      `0099-x.ts: imports values from "../database.ts"`,
      `0099-x.ts: imports "../../../core/pricing.ts"`,
      `0099-x.ts: imports "./0003-ledger.ts"`,
      `0099-x.ts: imports values from "../database.ts"`,
      `0099-x.ts: imports "./side-effect.ts"`,
      `0099-x.ts: imports "./0003-ledger.ts"`,
      `0099-x.ts: loads "../schema.ts" at run time`,
    ]);
  });

  test("index.ts runs every migration file, in file order", async () => {
    const listed = Object.keys(await migrationProvider("sqlite").getMigrations());
    const files = [...frozenFiles().keys()]
      .filter((f) => MIGRATION_FILE.test(f))
      .map((f) => f.replace(/\.ts$/, ""));
    assert.deepEqual(listed, files);
  });
});
