import { useState, type FormEvent } from "react";
import { ClusterStatusName } from "../../../src/protocol/clusters.ts";
import { PublicClustersQuery, type PublicCluster } from "../../../src/protocol/network.ts";
import { client } from "../api.ts";
import { ClusterStatusBadge } from "../components/cluster-status-badge.tsx";
import { Empty, ErrorState, Loading } from "../components/states.tsx";
import { clusterEndReason, notStartedWords } from "../event-lines.ts";
import { formatAgo, formatCount } from "../format.ts";
import { useRefreshOnClusterEvents } from "../live.tsx";
import { ownerClient, setOwnerKey, useOwnerKey } from "../owner-key.ts";
import { Pager } from "../components/pager.tsx";
import { TableHead, type Column } from "../components/table-head.tsx";
import { Link, linkTo, navigate, useQuery } from "../router.tsx";
import { useAsync } from "../use-async.ts";

/**
 * Clusters: every cluster on the network as the public sees it (`GET /v1/network/clusters`:
 * no owner, command or logs), newest first, and — once the owner enters an API key — their own
 * clusters in full. Status filter and cursor live in the query string; earlier cursors ride in
 * the history entry's state for the Previous button, as on the nodes page.
 */
const LIMIT = 20;
const ACTIVE = ["running", "provisioning", "pending"] as const;
const FIRST_COLUMNS: Column[] = ["Cluster", "Status", "Kind", { label: "Nodes", className: "num" }];
const PUBLIC_COLUMNS: Column[] = [
  ...FIRST_COLUMNS,
  "GPUs",
  "Regions",
  { label: "Started", className: "hide-sm" },
  { label: "Failovers", className: "hide-sm num" },
];
const OWNER_COLUMNS: Column[] = [...FIRST_COLUMNS, "Command", "Why it ended"];

function clustersUrl(status: string | undefined, cursor?: string): string {
  return linkTo("/clusters", { status, cursor });
}

export function ClustersPage() {
  const parsed = useQuery(PublicClustersQuery);
  return (
    <>
      <h1 tabIndex={-1}>Clusters</h1>
      {parsed.success ? (
        <PublicClusters status={parsed.data.status} cursor={parsed.data.cursor} />
      ) : (
        <div className="state state-error" role="alert">
          <p>This link's filters are not valid.</p>
          <Link to="/clusters" className="button">
            Show all clusters
          </Link>
        </div>
      )}
      <OwnerClusters />
    </>
  );
}

function PublicClusters({
  status,
  cursor,
}: {
  status: PublicCluster["status"] | undefined;
  cursor: string | undefined;
}) {
  const key = clustersUrl(status, cursor);
  const page = useAsync(
    () =>
      client.networkClusters({
        limit: LIMIT,
        ...(status === undefined ? {} : { status }),
        ...(cursor === undefined ? {} : { cursor }),
      }),
    key,
    { keepPrevious: true },
  );
  useRefreshOnClusterEvents(page.reload);

  return (
    <section aria-labelledby="public-clusters-title">
      <h2 id="public-clusters-title" className="visually-hidden">
        All clusters
      </h2>
      <form className="filters" role="search" aria-label="Filter clusters">
        <label>
          Status
          <select
            value={status ?? ""}
            onChange={(e) => navigate(clustersUrl(e.target.value))}
            name="status"
          >
            <option value="">any</option>
            {ClusterStatusName.options.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      {page.data === undefined ? (
        page.error === undefined ? (
          <Loading what="clusters" />
        ) : (
          <ErrorState error={page.error} onRetry={page.reload} />
        )
      ) : (
        <>
          <p className="subtitle" data-testid="clusters-active">
            {ACTIVE.map((s) => `${formatCount(page.data?.active[s] ?? 0)} ${s}`).join(" · ")}
          </p>
          {page.data.items.length === 0 ? (
            <Empty>
              {status === undefined ? (
                <>
                  No clusters yet. Deploy one with <code>tandem cluster deploy</code>.
                </>
              ) : (
                <>
                  No {status} clusters. <Link to="/clusters">Show all clusters</Link>
                </>
              )}
            </Empty>
          ) : (
            <>
              <div className="table-scroll" aria-busy={page.loading}>
                <table className="table" data-testid="clusters-table">
                  <TableHead columns={PUBLIC_COLUMNS} />
                  <tbody>
                    {page.data.items.map((c) => (
                      <PublicClusterRow key={c.id} cluster={c} />
                    ))}
                  </tbody>
                </table>
              </div>
              <Pager
                urlFor={(c) => clustersUrl(status, c)}
                nextCursor={page.data.nextCursor}
                cursor={cursor}
              />
            </>
          )}
        </>
      )}
    </section>
  );
}

/** "2 × rtx-4090", "CPU only", "—". */
export function formatClusterGpus(c: Pick<PublicCluster, "gpus" | "gpuModel">): string {
  if (c.gpuModel === "cpu") return "CPU only";
  if (c.gpuModel === null) return "—";
  return `${c.gpus} × ${c.gpuModel}`;
}

/** A cluster row's first two cells: its id, linking to its page, and its status. */
function IdAndStatus({
  cluster,
  testId,
}: {
  cluster: Pick<PublicCluster, "id" | "status">;
  testId?: string;
}) {
  return (
    <>
      <td>
        <Link to={`/clusters/${cluster.id}`} className="mono">
          {cluster.id}
        </Link>
      </td>
      <td>
        <ClusterStatusBadge status={cluster.status} {...(testId === undefined ? {} : { testId })} />
      </td>
    </>
  );
}

function PublicClusterRow({ cluster: c }: { cluster: PublicCluster }) {
  const failovers = c.events.filter((e) => e.type === "failover").length;
  return (
    <tr data-cluster-id={c.id}>
      <IdAndStatus cluster={c} testId="cluster-status" />
      <td>{c.kind}</td>
      <td className="num">
        {c.nodes}
        {c.standby > 0 ? ` (+${c.standby} standby)` : ""}
      </td>
      <td>{formatClusterGpus(c)}</td>
      <td>{c.regions.join(", ") || "—"}</td>
      <td className="hide-sm">
        {c.startedAt === null ? notStartedWords(c.status) : formatAgo(c.startedAt)}
      </td>
      <td className="hide-sm num">{failovers}</td>
    </tr>
  );
}

/** The owner's own clusters, in full, after they enter an API key (kept for this tab only). */
function OwnerClusters() {
  const apiKey = useOwnerKey();
  return (
    <section className="panel owner-panel" aria-labelledby="owner-title">
      <h2 id="owner-title">Your clusters</h2>
      {apiKey === null ? <KeyForm /> : <OwnerList apiKey={apiKey} />}
    </section>
  );
}

function KeyForm() {
  const [draft, setDraft] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (draft.trim() !== "") setOwnerKey(draft.trim());
  };
  return (
    <form className="key-form" onSubmit={submit} aria-label="Owner key">
      <label>
        API key
        <input
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          placeholder="tdm_…"
        />
      </label>
      <button type="submit" className="button button-primary">
        Show my clusters
      </button>
      <p className="card-detail">
        Kept in this tab only (sessionStorage) and sent only to this coordinator, as a bearer token.
      </p>
    </form>
  );
}

function OwnerList({ apiKey }: { apiKey: string }) {
  const mine = useAsync(() => ownerClient(apiKey).listClusters(), `mine:${apiKey}`);
  useRefreshOnClusterEvents(mine.reload);
  const forget = (
    <button type="button" className="button button-quiet" onClick={() => setOwnerKey(null)}>
      Forget the key
    </button>
  );
  if (mine.data === undefined) {
    return mine.error === undefined ? (
      <Loading what="your clusters" />
    ) : (
      <>
        <ErrorState error={mine.error} onRetry={mine.reload} />
        {forget}
      </>
    );
  }
  return (
    <>
      {mine.data.items.length === 0 ? (
        <Empty>This key's account has no clusters.</Empty>
      ) : (
        <div className="table-scroll">
          <table className="table table-compact" data-testid="owner-clusters">
            <TableHead columns={OWNER_COLUMNS} />
            <tbody>
              {mine.data.items.map((c) => (
                <tr key={c.id} data-cluster-id={c.id}>
                  <IdAndStatus cluster={c} />
                  <td>{c.kind}</td>
                  <td className="num">{c.nodes.filter((n) => n.active).length}</td>
                  <td className="mono">{c.command.join(" ")}</td>
                  <td data-testid="owner-cluster-reason">
                    {clusterEndReason(c.status, c.events) ?? "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {forget}
    </>
  );
}
