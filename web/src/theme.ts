import { useEffect, useState, useSyncExternalStore } from "react";

/** `system` follows prefers-color-scheme; the others pin a theme (saved, read by public/theme-init.js). */
export type ThemeChoice = "system" | "light" | "dark";
const STORAGE_KEY = "tandem-theme";

function savedChoice(): ThemeChoice {
  try {
    const saved = window.localStorage.getItem(STORAGE_KEY);
    return saved === "light" || saved === "dark" ? saved : "system";
  } catch {
    return "system";
  }
}

export function useThemeChoice(): [ThemeChoice, (choice: ThemeChoice) => void] {
  const [choice, setChoice] = useState<ThemeChoice>(savedChoice);
  useEffect(() => {
    const root = document.documentElement;
    if (choice === "system") delete root.dataset.theme;
    else root.dataset.theme = choice;
    try {
      if (choice === "system") window.localStorage.removeItem(STORAGE_KEY);
      else window.localStorage.setItem(STORAGE_KEY, choice);
    } catch {
      // Storage may be disabled: the choice lasts for this page only.
    }
  }, [choice]);
  return [choice, setChoice];
}

const darkQuery = () => window.matchMedia("(prefers-color-scheme: dark)");

function subscribeTheme(onChange: () => void): () => void {
  const media = darkQuery();
  media.addEventListener("change", onChange);
  const observer = new MutationObserver(onChange);
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  return () => {
    media.removeEventListener("change", onChange);
    observer.disconnect();
  };
}

/** The theme in effect now ("light" or "dark"), for code that paints (charts). */
export function useEffectiveTheme(): "light" | "dark" {
  return useSyncExternalStore(subscribeTheme, () => {
    const pinned = document.documentElement.dataset.theme;
    if (pinned === "light" || pinned === "dark") return pinned;
    return darkQuery().matches ? "dark" : "light";
  });
}

/** Colours for a chart drawn in `element`, read from the theme's CSS custom properties. */
export function chartStyle(element: HTMLElement) {
  const style = getComputedStyle(element);
  const color = (name: string) => style.getPropertyValue(name).trim();
  const axis = {
    stroke: color("--muted"),
    grid: { stroke: color("--border"), width: 1 },
    ticks: { stroke: color("--border"), width: 1 },
  };
  return { color, axis };
}
