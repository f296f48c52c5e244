import type { ReactNode } from "react";
import { client } from "../api.ts";
import { HistoryChart, type ChartSeries } from "../components/history-chart.tsx";
import { Meter } from "../components/meter.tsx";
import { Empty, ErrorState, Loading } from "../components/states.tsx";
import { StatusBadge, type NodeStatusName } from "../components/status-badge.tsx";
import { formatCount } from "../format.ts";
import { useLiveState, useRefreshOnClusterEvents, useRefreshOnLiveChanges } from "../live.tsx";
import { Link } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import type { NetworkStats } from "../../../src/protocol/nodes.ts";

// Totals first, so the verified line is drawn on top where the lines meet.
const NODE_SERIES: ChartSeries[] = [
  { label: "Nodes registered", value: (s) => s.nodesTotal, colorVar: "--chart-3" },
  { label: "Nodes connected", value: (s) => s.nodesOnline, colorVar: "--chart-1" },
  { label: "Nodes verified", value: (s) => s.nodesVerified, colorVar: "--chart-2" },
];
const GPU_SERIES: ChartSeries[] = [
  { label: "GPUs registered", value: (s) => s.gpusTotal, colorVar: "--chart-3" },
  { label: "GPUs connected", value: (s) => s.gpusOnline, colorVar: "--chart-1" },
  { label: "GPUs verified", value: (s) => s.gpusVerified, colorVar: "--chart-2" },
];

const STATUS_ORDER: NodeStatusName[] = [
  "available",
  "leased",
  "standby",
  "unverified",
  "offline",
  "revoked",
];

/**
 * The network at a glance ("connected vs verified": only verified GPUs are supply; connected ones
 * that are still unverified or flagged are shown beside them, never counted as supply). Headline cards, then panels in a grid: clusters running, earnings per
 * hour and token supply join as cards and panels here once their APIs exist.
 */
export function OverviewPage() {
  const stats = useAsync(() => client.networkStats(), "stats");
  useRefreshOnLiveChanges(stats.reload);

  return (
    <>
      <h1 tabIndex={-1}>Network overview</h1>
      {stats.data === undefined ? (
        stats.error === undefined ? (
          <Loading what="network statistics" />
        ) : (
          <ErrorState error={stats.error} onRetry={stats.reload} />
        )
      ) : (
        <OverviewContent stats={stats.data} />
      )}
    </>
  );
}

function OverviewContent({ stats }: { stats: NetworkStats }) {
  const live = useLiveState();
  const clusters = useAsync(() => client.networkClusters({ limit: 1 }), "clusters");
  useRefreshOnClusterEvents(clusters.reload);
  const active = clusters.data?.active;
  return (
    <>
      <section className="cards" aria-label="Headline figures">
        <Card
          label="Nodes verified"
          value={formatCount(stats.nodes.verified)}
          detail={
            <>
              of <span data-testid="nodes-online">{formatCount(stats.nodes.online)}</span>{" "}
              connected, {formatCount(stats.nodes.total)} registered
            </>
          }
          testId="nodes-verified"
        />
        <Card
          label="GPUs verified"
          value={formatCount(stats.gpus.verified)}
          detail={
            <>
              of <span data-testid="gpus-online">{formatCount(stats.gpus.online)}</span> connected,{" "}
              {formatCount(stats.gpus.total)} registered
            </>
          }
          testId="gpus-verified"
        />
        <Card
          label="Clusters running"
          value={active === undefined ? "…" : formatCount(active["running"] ?? 0)}
          detail={
            active === undefined
              ? "loading"
              : `${formatCount((active["provisioning"] ?? 0) + (active["pending"] ?? 0))} starting`
          }
          testId="clusters-running"
          to="/clusters?status=running"
        />
        <Card
          label="GPU models"
          value={formatCount(stats.gpus.byModel.length)}
          detail="in the network"
        />
      </section>

      <div className="panels">
        <section className="panel panel-wide" aria-labelledby="history-title">
          <h2 id="history-title">History</h2>
          <HistoryPanel samples={live.samples} intervalMs={live.sampleIntervalMs} />
        </section>

        <section className="panel" aria-labelledby="models-title">
          <h2 id="models-title">GPUs by model</h2>
          {stats.gpus.byModel.length === 0 ? (
            <Empty>No GPUs registered yet. CPU-only nodes count as nodes, not GPUs.</Empty>
          ) : (
            <table className="table table-compact">
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col" className="num">
                    Verified
                  </th>
                  <th scope="col" className="num">
                    Connected
                  </th>
                  <th scope="col" className="num">
                    Total
                  </th>
                  <th scope="col" className="bar-cell">
                    <span className="visually-hidden">Share verified</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {stats.gpus.byModel.map((m) => (
                  <tr key={m.model}>
                    <td>
                      <Link to={`/nodes?gpuModel=${encodeURIComponent(m.model)}`}>{m.model}</Link>
                    </td>
                    <td className="num">{formatCount(m.verified)}</td>
                    <td className="num">{formatCount(m.online)}</td>
                    <td className="num">{formatCount(m.total)}</td>
                    <td className="bar-cell">
                      <Meter fraction={m.total === 0 ? 0 : m.verified / m.total} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>

        <section className="panel" aria-labelledby="status-title">
          <h2 id="status-title">Nodes by status</h2>
          {stats.nodes.total === 0 ? (
            <Empty>
              No nodes yet. Start one with <code>tandem worker start</code>.
            </Empty>
          ) : (
            <ul className="status-list">
              {STATUS_ORDER.map((status) => (
                <li key={status}>
                  <Link to={`/nodes?status=${status}`}>
                    <StatusBadge status={status} />
                  </Link>
                  <span className="num">{formatCount(stats.nodes.byStatus[status] ?? 0)}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
    </>
  );
}

function HistoryPanel({
  samples,
  intervalMs,
}: {
  samples: ReturnType<typeof useLiveState>["samples"];
  intervalMs: number;
}) {
  if (samples.length < 2) {
    return (
      <Empty>
        Collecting samples: the coordinator records the network every {intervalMs / 1000} s and
        after each status change.
      </Empty>
    );
  }
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const minutes = Math.max(1, Math.round((Date.parse(last.at) - Date.parse(first.at)) / 60_000));
  return (
    <div className="chart-pair">
      <div>
        <h3>Nodes</h3>
        <HistoryChart
          samples={samples}
          series={NODE_SERIES}
          summary={`Nodes verified over the last ${minutes} minutes: from ${first.nodesVerified} to ${last.nodesVerified}, of ${last.nodesOnline} connected and ${last.nodesTotal} registered.`}
        />
      </div>
      <div>
        <h3>GPUs</h3>
        <HistoryChart
          samples={samples}
          series={GPU_SERIES}
          summary={`GPUs verified over the last ${minutes} minutes: from ${first.gpusVerified} to ${last.gpusVerified}, of ${last.gpusOnline} connected and ${last.gpusTotal} registered.`}
        />
      </div>
    </div>
  );
}

function Card(props: {
  label: string;
  value: string;
  detail: ReactNode;
  testId?: string;
  to?: string;
}) {
  return (
    <div className="card">
      <div className="card-label">
        {props.to === undefined ? props.label : <Link to={props.to}>{props.label}</Link>}
      </div>
      <div className="card-value" data-testid={props.testId}>
        {props.value}
      </div>
      <div className="card-detail">{props.detail}</div>
    </div>
  );
}
