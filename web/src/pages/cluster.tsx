import { useCallback } from "react";
import type { ClusterView } from "../../../src/protocol/clusters.ts";
import type { ClusterCostsView } from "../../../src/protocol/wallet.ts";
import type { PublicCluster } from "../../../src/protocol/network.ts";
import { client, isNotFound } from "../api.ts";
import { ClusterStatusBadge } from "../components/cluster-status-badge.tsx";
import { Empty, ErrorState, Loading } from "../components/states.tsx";
import { TableHead, type Column } from "../components/table-head.tsx";
import { clusterEndReason, clusterEventLine, ENDED, notStartedWords } from "../event-lines.ts";
import { formatDateTime } from "../format.ts";
import { useClusterEvents, useRefetchOnReconnect } from "../live.tsx";
import { ownerClient, useOwnerKey } from "../owner-key.ts";
import { Link } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import { formatClusterGpus } from "./clusters.tsx";

const NODE_COLUMNS: Column[] = [
  "Node",
  { label: "Rank", className: "num" },
  "Role",
  "Lease",
  "Zone",
  { label: "Price / h", className: "num" },
  "Limits",
];

/** A rank's limits in one line: "4096 MiB · 2 CPUs · 4096 pids · 20480 MiB disk". */
function formatLimits(limits: ClusterView["nodes"][number]["limits"]): string {
  if (limits === null) return "—";
  const { memoryMiB, cpuCores, pids, diskMiB } = limits;
  return `${memoryMiB} MiB · ${cpuCores} CPUs · ${pids} pids · ${diskMiB} MiB disk`;
}

/** One cluster: the public facts and events; for its owner (API key entered) everything else. */
export function ClusterPage({ id }: { id: string }) {
  const cluster = useAsync(() => client.networkCluster(id), id);
  const apiKey = useOwnerKey();
  const reload = cluster.reload;
  useRefetchOnReconnect(reload);
  useClusterEvents(
    useCallback(
      (event) => {
        if (event.clusterId === id) reload();
      },
      [id, reload],
    ),
  );

  const c = cluster.data;
  return (
    <>
      <p className="breadcrumb">
        <Link to="/clusters">Clusters</Link> /
      </p>
      <div className="title-row">
        <h1 tabIndex={-1} className="mono">
          {id}
        </h1>
        {c !== undefined && <ClusterStatusBadge status={c.status} testId="cluster-page-status" />}
      </div>
      {c === undefined ? (
        cluster.error === undefined ? (
          <Loading what="the cluster" />
        ) : isNotFound(cluster.error) ? (
          <div className="state state-error" role="alert">
            <p>There is no cluster {id} on this network.</p>
            <Link to="/clusters" className="button">
              All clusters
            </Link>
          </div>
        ) : (
          <ErrorState error={cluster.error} onRetry={cluster.reload} />
        )
      ) : (
        <div className="panels">
          <PublicFacts cluster={c} />
          <section className="panel" aria-labelledby="events-title">
            <h2 id="events-title">Events</h2>
            <EventList events={c.events} testId="public-events" />
          </section>
          {apiKey !== null && <OwnerView id={id} apiKey={apiKey} />}
        </div>
      )}
    </>
  );
}

function PublicFacts({ cluster: c }: { cluster: PublicCluster }) {
  return (
    <section className="panel" aria-labelledby="facts-title">
      <h2 id="facts-title">Cluster</h2>
      <dl className="facts">
        <dt>Kind</dt>
        <dd>{c.kind}</dd>
        <dt>Nodes</dt>
        <dd data-testid="cluster-nodes">
          {c.nodes}
          {c.standby > 0 ? ` (${c.standby} standby)` : ""}
        </dd>
        <dt>GPUs</dt>
        <dd>{formatClusterGpus(c)}</dd>
        <dt>Regions</dt>
        <dd>
          {c.regions.length === 0
            ? "—"
            : c.regions.map((r, i) => (
                <span key={r}>
                  {i > 0 && ", "}
                  <Link to={`/nodes?region=${encodeURIComponent(r)}`}>{r}</Link>
                </span>
              ))}
        </dd>
        <dt>Created</dt>
        <dd>{formatDateTime(c.createdAt)}</dd>
        <dt>Started</dt>
        <dd data-testid="cluster-started">
          {c.startedAt === null ? notStartedWords(c.status) : formatDateTime(c.startedAt)}
        </dd>
        <dt>Ended</dt>
        <dd>{c.endedAt === null ? "—" : `${c.status}, ${formatDateTime(c.endedAt)}`}</dd>
      </dl>
    </section>
  );
}

function EventList({
  events,
  testId,
}: {
  events: ReadonlyArray<{ at: string; type: string; detail: Record<string, unknown> }>;
  testId: string;
}) {
  if (events.length === 0) return <Empty>No events yet.</Empty>;
  return (
    <ol className="event-list" data-testid={testId}>
      {events.map((e, i) => (
        <li key={`${e.at}-${i}`} data-type={e.type}>
          <time dateTime={e.at}>{formatDateTime(e.at)}</time>
          <span className="event-line">{clusterEventLine(e)}</span>
        </li>
      ))}
    </ol>
  );
}

/** What only the owner sees: command, leases, every event with its reason, tasks and costs. */
function OwnerView({ id, apiKey }: { id: string; apiKey: string }) {
  const owner = ownerClient(apiKey);
  const full = useAsync(() => owner.getCluster(id), `full:${apiKey}:${id}`);
  const tasks = useAsync(() => owner.clusterTasks(id), `tasks:${apiKey}:${id}`);
  const costs = useAsync(() => owner.clusterCosts(id), `costs:${apiKey}:${id}`);
  const reload = useCallback(() => {
    full.reload();
    tasks.reload();
    costs.reload();
  }, [full.reload, tasks.reload, costs.reload]);
  useClusterEvents(
    useCallback(
      (event) => {
        if (event.clusterId === id) reload();
      },
      [id, reload],
    ),
  );

  if (full.data === undefined) {
    if (full.error === undefined) return <Loading what="your view of the cluster" />;
    return (
      <section className="panel panel-wide" aria-labelledby="owner-title">
        <h2 id="owner-title">Owner view</h2>
        {isNotFound(full.error) ? (
          <Empty>The API key you entered does not own this cluster.</Empty>
        ) : (
          <ErrorState error={full.error} onRetry={reload} />
        )}
      </section>
    );
  }
  const c: ClusterView = full.data;
  return (
    <section className="panel panel-wide" aria-labelledby="owner-title" data-testid="owner-view">
      <h2 id="owner-title">Owner view</h2>
      {ENDED.has(c.status) && <Outcome cluster={c} costs={costs.data} />}
      <dl className="facts facts-inline">
        <dt>Command</dt>
        <dd className="mono">{c.command.join(" ")}</dd>
        <dt>Paid hours</dt>
        <dd>
          {c.hours} h ({c.currency}){c.endsAt === null ? "" : `, ends ${formatDateTime(c.endsAt)}`}
        </dd>
      </dl>
      <h3>Nodes</h3>
      <div className="table-scroll">
        <table className="table table-compact" data-testid="owner-nodes">
          <TableHead columns={NODE_COLUMNS} />
          <tbody>
            {c.nodes.map((n, i) => (
              <tr key={`${n.nodeId}-${i}`} className={n.active ? undefined : "row-muted"}>
                <td>
                  <Link to={`/nodes/${n.nodeId}`} className="mono">
                    {n.nodeId}
                  </Link>
                </td>
                <td className="num">{n.rank ?? "—"}</td>
                <td>{n.role}</td>
                <td>
                  {n.status}
                  {n.active ? "" : " (history)"}
                </td>
                <td>{n.zone}</td>
                <td className="num">{n.pricePerHour}</td>
                <td>{formatLimits(n.limits)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Costs</h3>
      {costs.data === undefined ? (
        costs.error === undefined ? (
          <Loading what="costs" />
        ) : (
          <ErrorState error={costs.error} onRetry={costs.reload} />
        )
      ) : (
        <dl className="facts" data-testid="owner-costs">
          <dt>Charged</dt>
          <dd>
            {costs.data.charged} {costs.data.currency}
          </dd>
          <dt>Served</dt>
          <dd>{costs.data.served}</dd>
          <dt>In escrow</dt>
          <dd>{costs.data.escrow}</dd>
          <dt>Refunded</dt>
          <dd>{costs.data.refunded}</dd>
          <dt>Slash compensation</dt>
          <dd>{costs.data.slashCompensation}</dd>
        </dl>
      )}
      <h3>Task queue</h3>
      {tasks.data === undefined ? (
        tasks.error === undefined ? (
          <Loading what="tasks" />
        ) : (
          <ErrorState error={tasks.error} onRetry={tasks.reload} />
        )
      ) : tasks.data.items.length === 0 ? (
        <Empty>No tasks: this cluster runs its command once per rank.</Empty>
      ) : (
        <ol className="event-list" data-testid="owner-tasks">
          {tasks.data.items.map((t) => (
            <li key={t.seq}>
              <strong>#{t.seq}</strong> {t.status} —{" "}
              <span className="mono">{t.command.join(" ")}</span>
              {t.exitCode === null ? "" : ` (exit ${t.exitCode})`}
            </li>
          ))}
        </ol>
      )}
      {tasks.data?.nextCursor ? (
        <p className="muted">
          The first {tasks.data.items.length} tasks;{" "}
          <span className="mono">tandem cluster tasks {id} --all</span> lists every one.
        </p>
      ) : null}
      <h3>All events</h3>
      <EventList events={c.events} testId="owner-events" />
    </section>
  );
}

/** How an ended cluster ended, for its owner: when, why (its exit, if one failed it), the refund. */
function Outcome({
  cluster: c,
  costs,
}: {
  cluster: ClusterView;
  costs: ClusterCostsView | undefined;
}) {
  return (
    <dl
      className={`facts outcome outcome-${c.status === "completed" ? "ok" : "bad"}`}
      data-testid="owner-outcome"
    >
      <dt>Ended</dt>
      <dd>
        {c.status}
        {c.endedAt === null ? "" : `, ${formatDateTime(c.endedAt)}`}
        {c.startedAt === null ? " (it never started)" : ""}
      </dd>
      <dt>Why</dt>
      <dd data-testid="owner-end-reason">{clusterEndReason(c.status, c.events)}</dd>
      <dt>Refunded</dt>
      <dd data-testid="owner-refund">
        {costs === undefined
          ? "…"
          : `${costs.refunded} ${costs.currency} of ${costs.charged} ${costs.currency} charged (unserved time; fees are not refunded)`}
      </dd>
    </dl>
  );
}
