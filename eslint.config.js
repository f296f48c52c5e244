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
  {
    // One writer per state (issue 19): cluster and lease rows change only through
    // scheduler/cluster-lifecycle.ts, which checks each transition and keeps its history.
    files: ["src/**/*.ts"],
    ignores: [
      "src/**/*.test.ts",
      "src/coordinator/scheduler/cluster-lifecycle.ts",
      "src/coordinator/store/migrations/**",
    ],
    rules: {
      "no-restricted-syntax": [
        "error",
        {
          selector:
            "CallExpression[callee.property.name=/^(insertInto|updateTable|deleteFrom|replaceInto|mergeInto)$/][arguments.0.value=/^(clusters|cluster_nodes)$/]",
          message:
            "clusters and cluster_nodes rows are written only by src/coordinator/scheduler/cluster-lifecycle.ts.",
        },
      ],
    },
  },
  {
    files: ["**/*.test.ts", "test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
);
