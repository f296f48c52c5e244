import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * The dependency rule of DESIGN.md §2: arrows point inward only. Each entry names a layer and the
 * layers it must never import from. The coordinator and the worker share only `protocol`.
 */
const forbiddenImports = {
  "src/core": ["protocol", "coordinator", "worker", "client", "cli"],
  "src/protocol": ["coordinator", "worker", "client", "cli"],
  "src/coordinator": ["worker", "client", "cli"],
  "src/worker": ["coordinator", "client", "cli"],
  "src/client": ["core", "coordinator", "worker", "cli"],
  web: ["core", "coordinator", "worker", "cli"],
};

const boundaryRules = Object.entries(forbiddenImports).map(([dir, layers]) => ({
  files: [`${dir}/**/*.ts`, `${dir}/**/*.tsx`],
  rules: {
    "no-restricted-imports": [
      "error",
      {
        patterns: layers.map((layer) => ({
          group: [`**/${layer}/**`, `**/${layer}`],
          message: `DESIGN.md §2: ${dir} must not import from src/${layer}.`,
        })),
      },
    ],
  },
}));

const clusterWrites = {
  selector:
    "CallExpression[callee.property.name=/^(insertInto|updateTable|deleteFrom|replaceInto|mergeInto)$/][arguments.0.value=/^(clusters|cluster_nodes)$/]",
  message:
    "clusters and cluster_nodes rows are written only by src/coordinator/scheduler/cluster-lifecycle.ts.",
};
const rawTransactions = {
  selector: "CallExpression[callee.property.name='transaction'][arguments.length=0]",
  message: "open transactions with runInTransaction (src/coordinator/store/transaction.ts).",
};
const LIFECYCLE = "src/coordinator/scheduler/cluster-lifecycle.ts";
const TRANSACTION = "src/coordinator/store/transaction.ts";

/** The rules above per file: a later block's `no-restricted-syntax` replaces an earlier one's. */
function oneWriterRules() {
  const block = (files, selectors) => ({
    files,
    ignores: ["src/**/*.test.ts", "src/coordinator/store/migrations/**"],
    rules: { "no-restricted-syntax": ["error", ...selectors] },
  });
  return [
    block(["src/**/*.ts"], [clusterWrites, rawTransactions]),
    block([LIFECYCLE], [rawTransactions]),
    block([TRANSACTION], [clusterWrites]),
  ];
}

export default tseslint.config(
  { ignores: ["node_modules/", "web/dist/", "**/*.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["describe", "it", "test", "suite"] },
          ],
        },
      ],
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-empty": ["error", { allowEmptyCatch: false }],
    },
  },
  {
    // Pure domain: no I/O at all (DESIGN.md §2). Its tests may use node:test.
    files: ["src/core/**/*.ts"],
    ignores: ["src/core/**/*.test.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["node:*"], message: "src/core is pure: no node:* imports." },
            ...forbiddenImports["src/core"].map((layer) => ({
              group: [`**/${layer}/**`, `**/${layer}`],
              message: `DESIGN.md §2: src/core must not import from src/${layer}.`,
            })),
          ],
        },
      ],
    },
  },
  ...boundaryRules.map((r) =>
    r.files[0]?.startsWith("src/core") ? { ...r, files: ["src/core/**/*.test.ts"] } : r,
  ),
  // One writer per state (issue 19): cluster and lease rows change only through
  // scheduler/cluster-lifecycle.ts, which checks each transition and keeps its history; and every
  // transaction is opened by store/transaction.ts's runInTransaction (rerun after serialization
  // failures, its handle typed `Tx`).
  ...oneWriterRules(),
  {
    files: ["**/*.test.ts", "test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
);
