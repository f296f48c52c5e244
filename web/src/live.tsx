import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from "react";
import type { z } from "zod";
import { LiveEventName, LiveHello, LiveNodeStatus, StatsSample } from "../../src/protocol/live.ts";

/**
 * The coordinator's live stream (`GET /v1/events`, Server-Sent Events; protocol/live.ts), shared
 * by every page through one EventSource. The browser reconnects by itself after a dropped
 * connection; when the server refuses one outright (the stream is closed for good) this retries
 * with a backoff of 1 s doubling to 30 s. Each `hello` (first connection or reconnection) bumps
 * `generation`, so pages refetch what they may have missed meanwhile.
 */
export type LiveStatus = "connecting" | "live" | "reconnecting";

export interface LiveState {
  status: LiveStatus;
  /** Network samples, oldest first (the server's ring buffer, then each new sample). */
  samples: StatsSample[];
  sampleIntervalMs: number;
  /** How many `hello`s have arrived: 1 after the first connection, +1 at each reconnection. */
  generation: number;
}

type NodeStatusListener = (event: LiveNodeStatus) => void;

interface LiveContextValue {
  state: LiveState;
  onNodeStatus: (listener: NodeStatusListener) => () => void;
}

const MAX_SAMPLES = 720;
const LiveContext = createContext<LiveContextValue | undefined>(undefined);

export function LiveProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<LiveState>({
    status: "connecting",
    samples: [],
    sampleIntervalMs: 5000,
    generation: 0,
  });
  const listeners = useRef(new Set<NodeStatusListener>());

  useEffect(() => {
    let source: EventSource | undefined;
    let retryTimer: number | undefined;
    let backoffMs = 1000;

    const parse = <S extends z.ZodType>(schema: S, event: Event): z.infer<S> | undefined => {
      const result = schema.safeParse(JSON.parse((event as MessageEvent<string>).data));
      if (!result.success) console.warn("live: unexpected message", event.type, result.error);
      return result.success ? result.data : undefined;
    };

    const connect = () => {
      source = new EventSource("/v1/events");
      source.addEventListener(LiveEventName.hello, (event) => {
        const hello = parse(LiveHello, event);
        if (hello === undefined) return;
        backoffMs = 1000;
        setState((s) => ({
          status: "live",
          samples: hello.samples.slice(-MAX_SAMPLES),
          sampleIntervalMs: hello.sampleIntervalMs,
          generation: s.generation + 1,
        }));
      });
      source.addEventListener(LiveEventName.statsSample, (event) => {
        const sample = parse(StatsSample, event);
        if (sample === undefined) return;
        setState((s) => ({ ...s, samples: [...s.samples, sample].slice(-MAX_SAMPLES) }));
      });
      source.addEventListener(LiveEventName.nodeStatus, (event) => {
        const change = parse(LiveNodeStatus, event);
        if (change === undefined) return;
        for (const listener of listeners.current) listener(change);
      });
      source.addEventListener("error", () => {
        setState((s) => ({ ...s, status: "reconnecting" }));
        if (source?.readyState !== EventSource.CLOSED) return;
        retryTimer = window.setTimeout(connect, backoffMs);
        backoffMs = Math.min(backoffMs * 2, 30_000);
      });
    };
    connect();
    return () => {
      window.clearTimeout(retryTimer);
      source?.close();
    };
  }, []);

  const onNodeStatus = useCallback((listener: NodeStatusListener) => {
    listeners.current.add(listener);
    return () => void listeners.current.delete(listener);
  }, []);
  const value = useMemo(() => ({ state, onNodeStatus }), [state, onNodeStatus]);
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

function useLiveContext(): LiveContextValue {
  const value = useContext(LiveContext);
  if (value === undefined) throw new Error("useLive* needs a <LiveProvider> above it");
  return value;
}

export function useLiveState(): LiveState {
  return useLiveContext().state;
}

/** Calls `listener` for every node status change while the component is mounted. */
export function useNodeStatusEvents(listener: NodeStatusListener): void {
  const { onNodeStatus } = useLiveContext();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => onNodeStatus((event) => latest.current(event)), [onNodeStatus]);
}

/**
 * Calls `refresh` after node status changes (at most once per `throttleMs`, trailing) and after a
 * reconnection, for pages that show aggregates a single event cannot patch.
 */
export function useRefreshOnLiveChanges(refresh: () => void, throttleMs = 500): void {
  const latest = useRef(refresh);
  latest.current = refresh;
  const timer = useRef<number | undefined>(undefined);
  useNodeStatusEvents(() => {
    if (timer.current !== undefined) return;
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      latest.current();
    }, throttleMs);
  });
  useEffect(() => () => window.clearTimeout(timer.current), []);
  useRefetchOnReconnect(refresh);
}

/** Calls `refetch` when the live stream reconnects (events may have been missed meanwhile). */
export function useRefetchOnReconnect(refetch: () => void): void {
  const { generation } = useLiveState();
  const latest = useRef(refetch);
  latest.current = refetch;
  const seen = useRef(generation);
  useEffect(() => {
    const previous = seen.current;
    seen.current = generation;
    if (previous >= 1 && generation > previous) latest.current();
  }, [generation]);
}
