import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";
import type { z } from "zod";

/**
 * A small history-API router: the explorer has a handful of pages, and every piece of state worth
 * sharing (filters, cursor) lives in the URL's query string, so a link is a deep link.
 */
const listeners = new Set<() => void>();

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
  };
}

export function navigate(to: string, options: { replace?: boolean; state?: unknown } = {}): void {
  const state = options.state ?? null;
  if (options.replace) window.history.replaceState(state, "", to);
  else window.history.pushState(state, "", to);
  for (const listener of listeners) listener();
}

export interface RouterLocation {
  pathname: string;
  search: string;
}

let cached: RouterLocation = { pathname: "", search: "" };
function snapshot(): RouterLocation {
  const { pathname, search } = window.location;
  if (cached.pathname !== pathname || cached.search !== search) cached = { pathname, search };
  return cached;
}

export function useLocation(): RouterLocation {
  return useSyncExternalStore(subscribe, snapshot);
}

/** The history entry's state for the current location (set by `navigate`). */
export function historyState(): unknown {
  return window.history.state as unknown;
}

type LinkProps = AnchorHTMLAttributes<HTMLAnchorElement> & { to: string };

/** An ordinary link (middle-click and ctrl-click open a tab) that navigates in place otherwise. */
export function Link({ to, onClick, ...rest }: LinkProps) {
  const handle = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (
      event.defaultPrevented ||
      event.button !== 0 ||
      event.metaKey ||
      event.ctrlKey ||
      event.shiftKey ||
      event.altKey
    )
      return;
    event.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={handle} {...rest} />;
}

/** `path?k=v&…` from the values that are set (undefined and "" left out): a deep link. */
export function linkTo(path: string, values: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined && value !== "") params.set(key, String(value));
  }
  const query = params.toString();
  return query === "" ? path : `${path}?${query}`;
}

/** The location's query string parsed with a page's zod schema (the API's own parameter names). */
export function useQuery<S extends z.ZodType>(schema: S): z.ZodSafeParseResult<z.infer<S>> {
  const { search } = useLocation();
  return schema.safeParse(Object.fromEntries(new URLSearchParams(search)));
}
