import { Fragment, useCallback, useEffect, useState } from "react";
import type { HistoryEntry, NodeView, ReputationBreakdown } from "../../../src/protocol/nodes.ts";
import { client, isNotFound } from "../api.ts";
import { Meter } from "../components/meter.tsx";
import { Empty, ErrorState, Loaded, Loading } from "../components/states.tsx";
import { LeaseSummary } from "../components/lease-summary.tsx";
import { NodeEarningsTable } from "../components/node-earnings.tsx";
import { NodeStakePanel } from "../components/node-stake.tsx";
import { ProofRecordView, proofOf } from "../components/proof-record.tsx";
import { UptimeChart } from "../components/uptime-chart.tsx";
import { StatusBadge } from "../components/status-badge.tsx";
import { historyLine } from "../event-lines.ts";
import {
  formatAgo,
  formatDateTime,
  formatEngines,
  formatFraction,
  formatGpus,
  formatMiB,
} from "../format.ts";
import { useNodeStatusEvents, useRefetchOnReconnect } from "../live.tsx";
import { Link } from "../router.tsx";
import { useAsync } from "../use-async.ts";

const HISTORY_PAGE = 100;

/** One node: what it is, where, how reliable, and everything that happened to it. */
export function NodePage({ id }: { id: string }) {
  const node = useAsync(() => client.getNode(id), id);
  const reputation = useAsync(() => client.nodeReputation(id), id);
  const uptime = useAsync(() => client.nodeUptime(id), id);
  const earnings = useAsync(() => client.nodeEarnings(id), id);
  const history = useHistory(id);
  const [liveStatus, setLiveStatus] = useState<NodeView["status"] | undefined>(undefined);
  const [announcement, setAnnouncement] = useState("");
  useEffect(() => setLiveStatus(undefined), [node.data]);

  const refresh = useCallback(() => {
    node.reload();
    reputation.reload();
    uptime.reload();
    earnings.reload();
    history.reload();
  }, [node.reload, reputation.reload, uptime.reload, earnings.reload, history.reload]);
  useRefetchOnReconnect(refresh);
  useNodeStatusEvents((change) => {
    if (change.nodeId !== id) return;
    setLiveStatus(change.to);
    setAnnouncement(`Status changed from ${change.from} to ${change.to}: ${change.reason}.`);
    refresh();
  });

  const n = node.data;
  const status = liveStatus ?? n?.status;
  // The heading stays the same element while the page loads, so focus put on it stays there.
  const heading = (
    <>
      <p className="breadcrumb">
        <Link to="/nodes">Nodes</Link> /
      </p>
      <div className="title-row">
        <h1 tabIndex={-1} className="mono">
          {id}
        </h1>
        {status !== undefined && <StatusBadge status={status} testId="node-status" />}
      </div>
    </>
  );
  if (n === undefined || status === undefined) {
    return (
      <>
        {heading}
        {node.error === undefined ? (
          <Loading what="the node" />
        ) : isNotFound(node.error) ? (
          <Empty>
            There is no node with this id. <Link to="/nodes">Browse all nodes</Link>
          </Empty>
        ) : (
          <ErrorState error={node.error} onRetry={node.reload} />
        )}
      </>
    );
  }

  return (
    <>
      {heading}
      <p className="subtitle">
        {formatGpus(n)} · {n.region} / {n.zone} · {n.verified ? "verified" : "not verified yet"}
      </p>
      {n.flags.length > 0 && (
        <ul className="flags" aria-label="Flags">
          {n.flags.map((flag) => (
            <li key={flag} className="flag">
              ⚑ {flag}
            </li>
          ))}
        </ul>
      )}
      <p className="visually-hidden" aria-live="polite">
        {announcement}
      </p>

      <div className="panels">
        <section className="panel" aria-labelledby="status-title">
          <h2 id="status-title">Status and uptime</h2>
          <dl className="facts">
            <dt>Status</dt>
            <dd>{status}</dd>
            <dt>Last seen</dt>
            <dd>
              {n.lastSeenAt === null ? (
                "never"
              ) : (
                <time dateTime={n.lastSeenAt} title={formatDateTime(n.lastSeenAt)}>
                  {formatAgo(n.lastSeenAt)}
                </time>
              )}
            </dd>
            <dt>Registered</dt>
            <dd>
              <time dateTime={n.registeredAt}>{formatDateTime(n.registeredAt)}</time>
            </dd>
            {(["24h", "7d", "30d"] as const).map((window) => (
              <UptimeRow key={window} window={window} fraction={n.uptime[window]} />
            ))}
          </dl>
          <h3>Uptime per day, last 30 days</h3>
          <Loaded state={uptime} what="uptime">
            {(days) => <UptimeChart data={days} />}
          </Loaded>
        </section>

        <section className="panel" aria-labelledby="reputation-title">
          <h2 id="reputation-title">Reputation</h2>
          {reputation.data !== undefined ? (
            <Reputation breakdown={reputation.data} />
          ) : reputation.error !== undefined ? (
            <ErrorState error={reputation.error} onRetry={reputation.reload} />
          ) : (
            <Loading what="reputation" />
          )}
        </section>

        <section className="panel" aria-labelledby="location-title">
          <h2 id="location-title">Location and identity</h2>
          <dl className="facts">
            <dt>Region</dt>
            <dd>
              <Link to={`/nodes?region=${encodeURIComponent(n.region)}`}>{n.region}</Link>
            </dd>
            <dt>Zone</dt>
            <dd>
              <Link to={`/nodes?zone=${encodeURIComponent(n.zone)}`}>{n.zone}</Link>
            </dd>
            <dt>Device</dt>
            <dd className="mono">{n.deviceId}</dd>
            <dt>Verified</dt>
            <dd>{n.verified ? "yes" : "not yet"}</dd>
            <dt>Flags</dt>
            <dd>{n.flags.length === 0 ? "none" : n.flags.join(", ")}</dd>
          </dl>
        </section>

        <section className="panel" aria-labelledby="leases-title">
          <h2 id="leases-title">Leases and slashes</h2>
          <LeaseSummary items={history.items} complete={history.nextCursor === null} />
        </section>

        <section className="panel" aria-labelledby="earnings-title">
          <h2 id="earnings-title">Earnings</h2>
          <Loaded state={earnings} what="earnings">
            {(data) => <NodeEarningsTable earnings={data} />}
          </Loaded>
        </section>

        <NodeStakePanel id={id} />

        <section className="panel panel-wide" aria-labelledby="hardware-title">
          <h2 id="hardware-title">Hardware</h2>
          <Hardware node={n} />
        </section>

        <section className="panel panel-wide" aria-labelledby="history-title">
          <h2 id="history-title">History</h2>
          <HistoryTable history={history} />
        </section>
      </div>
    </>
  );
}

function UptimeRow({ window, fraction }: { window: string; fraction: number }) {
  return (
    <>
      <dt>Uptime {window.replace(/(\d+)/, "$1 ")}</dt>
      <dd className="uptime">
        <Meter fraction={fraction} />
        <span className="num" data-testid={`uptime-${window}`}>
          {formatFraction(fraction)}
        </span>
      </dd>
    </>
  );
}

/** The score and its terms (src/core/reputation.ts; the README's "Reputation" section). */
function Reputation({ breakdown }: { breakdown: ReputationBreakdown }) {
  const e = breakdown.evidence;
  const n = (x: number) => x.toFixed(2);
  const terms: Array<[keyof ReputationBreakdown["components"], string, string]> = [
    ["uptime", "Uptime", `30 d ${formatFraction(e.uptime30d)}`],
    [
      "completion",
      "Completed leases",
      `${n(e.completed)} of ${n(e.completed + e.lost + e.lapsed)}`,
    ],
    ["failures", "Failures caused", `${n(e.lost)} lost, ${n(e.lapsed)} lapsed`],
    [
      "verification",
      "Verification",
      `${n(e.verificationsPassed)} passed, ${n(e.verificationsFailed)} failed`,
    ],
    ["slashes", "Slashes", n(e.slashes)],
  ];
  return (
    <dl className="facts">
      <dt>Score</dt>
      <dd className="num" data-testid="reputation-score">
        {breakdown.score.toFixed(1)} / 100
      </dd>
      {terms.map(([key, label, evidence]) => (
        <Fragment key={key}>
          <dt>{label}</dt>
          <dd>
            <span className="num">
              {breakdown.components[key].points.toFixed(1)} / {breakdown.components[key].weight}
            </span>{" "}
            · {evidence}
          </dd>
        </Fragment>
      ))}
    </dl>
  );
}

function Hardware({ node }: { node: NodeView }) {
  return (
    <>
      <dl className="facts facts-inline">
        <dt>CPU</dt>
        <dd>
          {node.cpu.model} ({node.cpu.cores} cores, {node.cpu.arch})
        </dd>
        <dt>Memory</dt>
        <dd>{formatMiB(node.memoryTotalMiB)}</dd>
        <dt>Disk free</dt>
        <dd>{formatMiB(node.diskFreeMiB)}</dd>
        <dt>OS</dt>
        <dd>{node.os || "unknown"}</dd>
        <dt>Engines</dt>
        <dd data-testid="engines">{formatEngines(node.engines)}</dd>
      </dl>
      {node.gpus.length === 0 ? (
        <p className="muted">No GPUs: this node offers CPU only.</p>
      ) : (
        <div className="table-scroll">
          <table className="table table-compact" data-testid="gpu-table">
            <caption className="visually-hidden">GPUs</caption>
            <thead>
              <tr>
                <th scope="col" className="num">
                  #
                </th>
                <th scope="col">Name</th>
                <th scope="col">Catalog model</th>
                <th scope="col" className="num">
                  VRAM
                </th>
              </tr>
            </thead>
            <tbody>
              {node.gpus.map((gpu) => (
                <tr key={gpu.index}>
                  <td className="num">{gpu.index}</td>
                  <td>{gpu.name}</td>
                  <td>{gpu.model ?? "not in the catalog"}</td>
                  <td className="num">{formatMiB(gpu.memoryTotalMiB)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

interface HistoryState {
  items: HistoryEntry[];
  nextCursor: string | null;
  loading: boolean;
  error: unknown;
  loadMore: () => void;
  reload: () => void;
}

/** The node's history, oldest first, a page at a time; `reload` refetches the pages shown. */
function useHistory(id: string): HistoryState {
  const [pages, setPages] = useState(1);
  const [tick, setTick] = useState(0);
  const [state, setState] = useState<Omit<HistoryState, "loadMore" | "reload"> & { id: string }>({
    id,
    items: [],
    nextCursor: null,
    loading: true,
    error: undefined,
  });

  useEffect(() => {
    let current = true;
    setState((s) => ({
      ...(s.id === id ? s : { items: [], nextCursor: null }),
      id,
      loading: true,
      error: undefined,
    }));
    (async () => {
      const items: HistoryEntry[] = [];
      let cursor: string | undefined;
      let nextCursor: string | null = null;
      for (let i = 0; i < pages; i++) {
        const page = await client.nodeHistory(id, {
          limit: HISTORY_PAGE,
          ...(cursor === undefined ? {} : { cursor }),
        });
        items.push(...page.items);
        nextCursor = page.nextCursor;
        if (nextCursor === null) break;
        cursor = nextCursor;
      }
      return { items, nextCursor };
    })().then(
      ({ items, nextCursor }) => {
        if (current) setState({ id, items, nextCursor, loading: false, error: undefined });
      },
      (error: unknown) => {
        if (current) setState((s) => ({ ...s, loading: false, error }));
      },
    );
    return () => {
      current = false;
    };
  }, [id, pages, tick]);

  const loadMore = useCallback(() => setPages((p) => p + 1), []);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, loadMore, reload };
}

function HistoryTable({ history }: { history: HistoryState }) {
  if (history.items.length === 0) {
    if (history.error !== undefined)
      return <ErrorState error={history.error} onRetry={history.reload} />;
    if (history.loading) return <Loading what="history" />;
    return <Empty>Nothing has happened to this node yet.</Empty>;
  }
  return (
    <>
      <div className="table-scroll">
        <table className="table table-compact history-table" data-testid="history-table">
          <caption className="visually-hidden">History, oldest first</caption>
          <thead>
            <tr>
              <th scope="col" className="history-time">
                Time
              </th>
              <th scope="col" className="history-action">
                Event
              </th>
              <th scope="col" className="history-status">
                Status
              </th>
              <th scope="col" className="history-actor hide-sm">
                By
              </th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {history.items.map((entry) => (
              <tr key={entry.id} data-action={entry.action}>
                <td>
                  <time dateTime={entry.at}>{formatDateTime(entry.at)}</time>
                </td>
                <td>{entry.action.replaceAll("-", " ")}</td>
                <td>
                  {entry.from === null && entry.to === null
                    ? "—"
                    : `${entry.from ?? "—"} → ${entry.to ?? "—"}`}
                </td>
                <td className="hide-sm mono-soft">{entry.actor}</td>
                <td className="history-detail">
                  <HistoryDetail entry={entry} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {history.error !== undefined && <ErrorState error={history.error} onRetry={history.reload} />}
      {history.nextCursor !== null && (
        <button
          type="button"
          className="button"
          onClick={history.loadMore}
          disabled={history.loading}
        >
          {history.loading ? "Loading…" : "Load more recent entries"}
        </button>
      )}
    </>
  );
}

/** A proof of hardware as a table per device; any other row's detail as a line of words. */
function HistoryDetail({ entry }: { entry: HistoryEntry }) {
  const proof = proofOf(entry);
  return proof === undefined ? <>{historyLine(entry)}</> : <ProofRecordView proof={proof} />;
}
