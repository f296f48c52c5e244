import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const webDir = fileURLToPath(new URL(".", import.meta.url));
const repoDir = fileURLToPath(new URL("..", import.meta.url));

/**
 * The explorer's build. It imports the typed client and the protocol schemas straight from
 * src/ (DESIGN.md §2: web → client, protocol). `npm run dev:web` serves it with hot reload and
 * proxies the API to a running coordinator ($TANDEM_URL, default http://127.0.0.1:7400).
 */
export default defineConfig({
  root: webDir,
  plugins: [react()],
  resolve: {
    // protocol/ids.ts imports node:crypto for newId(), which the explorer never calls.
    alias: { "node:crypto": fileURLToPath(new URL("src/shims/node-crypto.ts", import.meta.url)) },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      // The client imports each answer's schemas on first use, so the CLI builds only its own
      // (src/client/client.ts); the explorer imports most of them anyway, which is what this says.
      onwarn(warning, warn) {
        if (warning.code !== "INEFFECTIVE_DYNAMIC_IMPORT") warn(warning);
      },
    },
  },
  server: {
    fs: { allow: [repoDir] },
    proxy: { "/v1": process.env.TANDEM_URL ?? "http://127.0.0.1:7400" },
  },
});
