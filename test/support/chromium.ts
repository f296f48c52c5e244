// Debian's Chromium for playwright-core, with the flags that work on these machines
// (shared/MACHINE-NOTES.md): headless, no sandbox, nothing reaching the network on its own.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Chromium with a fresh profile at 1280×860, light scheme, and its first page; every error the
 * page logs or throws is appended to `errors`. `close` ends it and removes the profile.
 */
export async function openChromium(
  errors: string[],
): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const userDataDir = await mkdtemp(join(tmpdir(), "tandem-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
    colorScheme: "light",
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  const close = async () => {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  };
  return { context, page, close };
}
