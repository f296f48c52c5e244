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
import { LIVE_CLUSTER_EVENT, LiveClusterEvent } from "../../src/protocol/network.ts";

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
type ClusterEventListener = (event: LiveClusterEvent) => void;

interface LiveContextValue {
  state: LiveState;
  onNodeStatus: (listener: NodeStatusListener) => () => void;
  onClusterEvent: (listener: ClusterEventListener) => () => void;
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
  const clusterListeners = useRef(new Set<ClusterEventListener>());

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
      source.addEventListener(LIVE_CLUSTER_EVENT, (event) => {
        const clusterEvent = parse(LiveClusterEvent, event);
        if (clusterEvent === undefined) return;
        for (const listener of clusterListeners.current) listener(clusterEvent);
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
  const onClusterEvent = useCallback((listener: ClusterEventListener) => {
    clusterListeners.current.add(listener);
    return () => void clusterListeners.current.delete(listener);
  }, []);
  const value = useMemo(
    () => ({ state, onNodeStatus, onClusterEvent }),
    [state, onNodeStatus, onClusterEvent],
  );
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

/** Calls `listener` for every public cluster event while the component is mounted. */
export function useClusterEvents(listener: ClusterEventListener): void {
  const { onClusterEvent } = useLiveContext();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => onClusterEvent((event) => latest.current(event)), [onClusterEvent]);
}

/**
 * Calls `refresh` after cluster events (at most once per `throttleMs`, trailing) and after a
 * reconnection, for pages that list clusters.
 */
export function useRefreshOnClusterEvents(refresh: () => void, throttleMs = 250): void {
  useClusterEvents(useThrottled(refresh, throttleMs));
  useRefetchOnReconnect(refresh);
}

/** A trigger that calls `fn` once, `throttleMs` after the first call since the last run. */
function useThrottled(fn: () => void, throttleMs: number): () => void {
  const latest = useRef(fn);
  latest.current = fn;
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  return useCallback(() => {
    if (timer.current !== undefined) return;
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      latest.current();
    }, throttleMs);
  }, [throttleMs]);
}

/**
 * Calls `refresh` after node status changes (at most once per `throttleMs`, trailing) and after a
 * reconnection, for pages that show aggregates a single event cannot patch.
 */
export function useRefreshOnLiveChanges(refresh: () => void, throttleMs = 500): void {
  useNodeStatusEvents(useThrottled(refresh, throttleMs));
  useRefetchOnReconnect(refresh);
}

/**
 * Calls `refresh` at each network sample (every `sampleIntervalMs`, 5 s by default, and after
 * status changes) and after a reconnection: for pages whose figures change without an event of
 * their own (the token supply, stakes, hourly reward blocks), so they trail the network by one
 * sample at most.
 */
export function useRefreshOnSamples(refresh: () => void): void {
  const { samples, generation } = useLiveState();
  const latest = useRef(refresh);
  latest.current = refresh;
  const seen = useRef({ samples, generation });
  useEffect(() => {
    const previous = seen.current;
    seen.current = { samples, generation };
    // A new `hello` replaces the samples too: useRefetchOnReconnect answers that one.
    if (generation === previous.generation && samples !== previous.samples) latest.current();
  }, [samples, generation]);
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
