// Debian's Chromium for playwright-core, with the flags that work on these machines
// (shared/MACHINE-NOTES.md): headless, no sandbox, nothing reaching the network on its own.
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
