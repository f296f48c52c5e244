import { useCallback, useEffect, useRef, useState } from "react";

export interface AsyncState<T> {
  /** The latest answer for this key; kept while a reload is under way, so pages do not flicker. */
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` whenever `key` changes (or `reload` is called) and keeps only the latest answer:
 * a slow answer for an earlier key never overwrites a newer one. With `keepPrevious`, the answer
 * for the previous key stays in `data` (with `loading` true) until the new one arrives, so a table
 * does not blink empty between two filters.
 */
export function useAsync<T>(
  load: () => Promise<T>,
  key: string,
  options: { keepPrevious?: boolean } = {},
): AsyncState<T> {
  const [state, setState] = useState<{ key: string; data: T | undefined; error: unknown }>({
    key,
    data: undefined,
    error: undefined,
  });
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    let current = true;
    setLoading(true);
    loadRef.current().then(
      (data) => {
        if (!current) return;
        setState({ key, data, error: undefined });
        setLoading(false);
      },
      (error: unknown) => {
        if (!current) return;
        setState((s) => ({ key, data: s.key === key ? s.data : undefined, error }));
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [key, tick]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  const fresh = state.key === key;
  return {
    data: fresh || options.keepPrevious ? state.data : undefined,
    error: fresh ? state.error : undefined,
    loading: loading || !fresh,
    reload,
  };
}
