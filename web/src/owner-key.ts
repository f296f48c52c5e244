import { useSyncExternalStore } from "react";
import { TandemClient } from "../../src/client/client.ts";

/**
 * The owner's API key, entered on the clusters page to see their own clusters in full. It lives
 * in sessionStorage (gone when the tab closes; never in localStorage, a URL or a cookie) and is
 * sent only as a bearer token to this coordinator.
 */
const STORAGE_KEY = "tandem-api-key";
const listeners = new Set<() => void>();

function read(): string | null {
  try {
    return window.sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function setOwnerKey(key: string | null): void {
  try {
    if (key === null) window.sessionStorage.removeItem(STORAGE_KEY);
    else window.sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // Storage may be disabled: the key cannot be kept, and the owner view stays closed.
  }
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useOwnerKey(): string | null {
  return useSyncExternalStore(subscribe, read);
}

const clients = new Map<string, TandemClient>();

/** A client that sends the owner's key (one per key). */
export function ownerClient(apiKey: string): TandemClient {
  let client = clients.get(apiKey);
  if (client === undefined) {
    client = new TandemClient({ baseUrl: window.location.origin, apiKey, timeoutMs: 10_000 });
    clients.set(apiKey, client);
  }
  return client;
}
