import { useEffect, useState, type FormEvent } from "react";
import type { z } from "zod";
import {
  ListNodesQuery,
  NodeSortKey,
  NodeStatusName,
  type NodeView,
} from "../../../src/protocol/nodes.ts";
import { client } from "../api.ts";
import { Empty, ErrorState, Loading } from "../components/states.tsx";
import { StatusBadge } from "../components/status-badge.tsx";
import { formatAgo, formatFraction, formatGpus, formatMiB, formatUsd } from "../format.ts";
import { useNodeStatusEvents, useRefetchOnReconnect } from "../live.tsx";
import { Pager, previousCursors } from "../components/pager.tsx";
import { Link, linkTo, navigate, useQuery } from "../router.tsx";
import { useAsync } from "../use-async.ts";

/**
 * The node table. Filtering and paging happen on the server (`GET /v1/nodes`, cursor paging), so
 * the page renders one page of rows however large the network is. Filters, page size and cursor
 * live in the query string (the API's own parameter names), so any view is a link; the cursors of
 * earlier pages ride in the history entry's state for the Previous button.
 */
const PAGE_SIZES = [25, 50, 100, 200];
const DEFAULT_LIMIT = 50;

type NodesQuery = z.infer<typeof ListNodesQuery>;
type Filters = Pick<
  NodesQuery,
  "gpuModel" | "region" | "zone" | "status" | "minUptime" | "minVramMiB" | "sort" | "order"
>;
/** What the URL carries besides paging: the filters, then the order (sorted on the server). */
const FILTER_KEYS = ["gpuModel", "region", "zone", "status", "minUptime", "minVramMiB"] as const;
const URL_KEYS = [...FILTER_KEYS, "sort", "order"] as const;
const SORT_LABELS: Record<NodeSortKey, string> = {
  registered: "Registration",
  uptime: "Uptime 30 d",
  reputation: "Reputation",
  gpuModel: "Model",
  region: "Region",
  status: "Status",
  price: "Price",
};

function nodesUrl(filters: Filters, limit: number, cursor?: string): string {
  return linkTo("/nodes", {
    ...Object.fromEntries(URL_KEYS.map((key) => [key, filters[key]])),
    limit: limit === DEFAULT_LIMIT ? undefined : limit,
    cursor,
  });
}

export function NodesPage() {
  const parsed = useQuery(ListNodesQuery);

  return (
    <>
      <h1 tabIndex={-1}>Nodes</h1>
      {parsed.success ? (
        <NodesView query={parsed.data} />
      ) : (
        <div className="state state-error" role="alert">
          <p>
            This link's filters are not valid:{" "}
            {parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}.
          </p>
          <Link to="/nodes" className="button">
            Show all nodes
          </Link>
        </div>
      )}
    </>
  );
}

function NodesView({ query }: { query: NodesQuery }) {
  const { limit, cursor, ...filters } = query;
  const key = nodesUrl(filters, limit, cursor);
  const page = useAsync(() => client.listNodes(query), key, { keepPrevious: true });
  const models = useAsync(() => client.networkStats(), "stats");
  useRefetchOnReconnect(page.reload);

  const [liveStatus, setLiveStatus] = useState(new Map<string, NodeView["status"]>());
  // A status change moves the node's uptime, reputation and last-seen figures too: its row is
  // fetched again, so the list shows the figures its own page shows (not those of before).
  const [fresh, setFresh] = useState(new Map<string, NodeView>());
  const [announcement, setAnnouncement] = useState("");
  useEffect(() => {
    setLiveStatus(new Map());
    setFresh(new Map());
  }, [page.data]);
  useNodeStatusEvents((change) => {
    if (!page.data?.items.some((n) => n.id === change.nodeId)) return;
    setLiveStatus((m) => new Map(m).set(change.nodeId, change.to));
    setAnnouncement(`${change.nodeId} is now ${change.to}.`);
    client.getNode(change.nodeId).then(
      (node) => setFresh((m) => new Map(m).set(node.id, node)),
      // The row keeps its figures; the next page load or reconnect brings them.
      () => undefined,
    );
  });

  const previous = previousCursors();
  const filtered = FILTER_KEYS.some((k) => filters[k] !== undefined);
  const firstRow = previous.length * limit + 1;

  return (
    <>
      <FilterForm
        filters={filters}
        limit={limit}
        models={models.data?.gpus.byModel.map((m) => m.model) ?? []}
      />
      <p className="visually-hidden" aria-live="polite">
        {announcement}
      </p>
      {page.data === undefined ? (
        page.error === undefined ? (
          <Loading what="nodes" />
        ) : (
          <ErrorState error={page.error} onRetry={page.reload} />
        )
      ) : page.data.items.length === 0 ? (
        <Empty>
          {filtered ? (
            <>
              No nodes match these filters. <Link to="/nodes">Clear the filters</Link>
            </>
          ) : cursor === undefined ? (
            <>
              No nodes have registered yet. Start one with <code>tandem worker start</code>.
            </>
          ) : (
            <>
              No more nodes. <Link to={nodesUrl(filters, limit)}>Back to the first page</Link>
            </>
          )}
        </Empty>
      ) : (
        <>
          <div className="table-scroll" aria-busy={page.loading}>
            <table className="table" data-testid="nodes-table">
              <caption className="visually-hidden">
                Nodes {firstRow} to {firstRow + page.data.items.length - 1}
                {filtered ? ", filtered" : ""}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Status</th>
                  <th scope="col">GPUs</th>
                  <th scope="col" className="num">
                    VRAM / GPU
                  </th>
                  <th scope="col">Region / zone</th>
                  <th scope="col" className="num">
                    Price / h
                  </th>
                  <th scope="col" className="num hide-sm">
                    Uptime 30 d
                  </th>
                  <th scope="col" className="num hide-sm">
                    Reputation
                  </th>
                  <th scope="col" className="hide-sm">
                    Last seen
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.data.items.map((node) => (
                  <NodeRow
                    key={node.id}
                    node={fresh.get(node.id) ?? node}
                    liveStatus={liveStatus.get(node.id)}
                  />
                ))}
              </tbody>
            </table>
          </div>
          <Pager
            cursor={cursor}
            nextCursor={page.data.nextCursor}
            urlFor={(c) => nodesUrl(filters, limit, c)}
          >
            <span className="pager-info">
              {firstRow}–{firstRow + page.data.items.length - 1}
              {cursor !== undefined && previous.length === 0 && (
                <>
                  {" "}
                  · <Link to={nodesUrl(filters, limit)}>first page</Link>
                </>
              )}
            </span>
          </Pager>
        </>
      )}
    </>
  );
}

function NodeRow({
  node,
  liveStatus,
}: {
  node: NodeView;
  liveStatus: NodeView["status"] | undefined;
}) {
  const status = liveStatus ?? node.status;
  return (
    <tr className={liveStatus === undefined ? undefined : "row-changed"} data-node-id={node.id}>
      <td>
        <Link to={`/nodes/${node.id}`} className="mono">
          {node.id}
        </Link>
      </td>
      <td>
        <StatusBadge status={status} testId="row-status" />
      </td>
      <td>{formatGpus(node)}</td>
      <td className="num">{node.vramMiB === 0 ? "—" : formatMiB(node.vramMiB)}</td>
      <td>
        {node.region} / {node.zone}
      </td>
      <td className="num" data-testid="row-price">
        {formatUsd(node.pricePerHourUsd)}
      </td>
      <td className="num hide-sm" data-testid="row-uptime">
        {formatFraction(node.uptime["30d"])}
      </td>
      <td className="num hide-sm">{node.reputation.toFixed(1)}</td>
      <td className="hide-sm">{node.lastSeenAt === null ? "never" : formatAgo(node.lastSeenAt)}</td>
    </tr>
  );
}

interface Draft {
  gpuModel: string;
  region: string;
  zone: string;
  status: string;
  minUptimePct: string;
  minVramGiB: string;
  limit: number;
  sort: string;
  order: string;
}

function draftOf(filters: Filters, limit: number): Draft {
  return {
    sort: filters.sort ?? "",
    order: filters.order ?? "",
    gpuModel: filters.gpuModel ?? "",
    region: filters.region ?? "",
    zone: filters.zone ?? "",
    status: filters.status ?? "",
    minUptimePct:
      filters.minUptime === undefined ? "" : String(Math.round(filters.minUptime * 1000) / 10),
    minVramGiB: filters.minVramMiB === undefined ? "" : String(filters.minVramMiB / 1024),
    limit,
  };
}

function filtersOf(draft: Draft): Filters {
  const number = (text: string) => (text.trim() === "" ? undefined : Number(text));
  const uptime = number(draft.minUptimePct);
  const vram = number(draft.minVramGiB);
  const status = NodeStatusName.safeParse(draft.status);
  const filters: Filters = {};
  if (draft.gpuModel !== "") filters.gpuModel = draft.gpuModel;
  if (draft.region.trim() !== "") filters.region = draft.region.trim();
  if (draft.zone.trim() !== "") filters.zone = draft.zone.trim();
  if (status.success) filters.status = status.data;
  if (uptime !== undefined) filters.minUptime = Math.round(uptime * 10) / 1000;
  if (vram !== undefined) filters.minVramMiB = Math.round(vram * 1024);
  const sort = NodeSortKey.safeParse(draft.sort);
  if (sort.success && sort.data !== "registered") filters.sort = sort.data;
  if (draft.order === "asc" || draft.order === "desc") filters.order = draft.order;
  return filters;
}

/** Selects apply at once; text and number fields apply on Enter or the Apply button. */
function FilterForm({
  filters,
  limit,
  models,
}: {
  filters: Filters;
  limit: number;
  models: string[];
}) {
  const initial = draftOf(filters, limit);
  const initialKey = JSON.stringify(initial);
  const [draft, setDraft] = useState(initial);
  useEffect(() => setDraft(JSON.parse(initialKey) as Draft), [initialKey]);

  const apply = (next: Draft) => navigate(nodesUrl(filtersOf(next), next.limit));
  const change = (patch: Partial<Draft>, now = false) => {
    const next = { ...draft, ...patch };
    setDraft(next);
    if (now) apply(next);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    apply(draft);
  };
  const modelOptions = [...new Set([...models, ...(filters.gpuModel ? [filters.gpuModel] : [])])];

  return (
    <form className="filters" onSubmit={submit} aria-label="Filter nodes" role="search">
      <label>
        GPU model
        <select
          name="gpuModel"
          value={draft.gpuModel}
          onChange={(e) => change({ gpuModel: e.target.value }, true)}
        >
          <option value="">Any</option>
          {modelOptions.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
      </label>
      <label>
        Status
        <select
          name="status"
          value={draft.status}
          onChange={(e) => change({ status: e.target.value }, true)}
        >
          <option value="">Any</option>
          {NodeStatusName.options.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Sort by
        <select
          name="sort"
          value={draft.sort}
          onChange={(e) => change({ sort: e.target.value }, true)}
        >
          {NodeSortKey.options.map((k) => (
            <option key={k} value={k === "registered" ? "" : k}>
              {SORT_LABELS[k]}
            </option>
          ))}
        </select>
      </label>
      <label>
        Order
        <select
          name="order"
          value={draft.order}
          onChange={(e) => change({ order: e.target.value }, true)}
        >
          <option value="">Default</option>
          <option value="asc">Ascending</option>
          <option value="desc">Descending</option>
        </select>
      </label>
      <label>
        Region
        <input
          name="region"
          value={draft.region}
          placeholder="e.g. eu-west"
          onChange={(e) => change({ region: e.target.value })}
        />
      </label>
      <label>
        Zone
        <input
          name="zone"
          value={draft.zone}
          placeholder="e.g. eu-west-a"
          onChange={(e) => change({ zone: e.target.value })}
        />
      </label>
      <label>
        Min uptime (30 d, %)
        <input
          name="minUptime"
          type="number"
          min={0}
          max={100}
          step="any"
          inputMode="decimal"
          value={draft.minUptimePct}
          onChange={(e) => change({ minUptimePct: e.target.value })}
        />
      </label>
      <label>
        Min VRAM (GiB)
        <input
          name="minVram"
          type="number"
          min={0}
          step="any"
          inputMode="decimal"
          value={draft.minVramGiB}
          onChange={(e) => change({ minVramGiB: e.target.value })}
        />
      </label>
      <label>
        Per page
        <select
          name="limit"
          value={draft.limit}
          onChange={(e) => change({ limit: Number(e.target.value) }, true)}
        >
          {[...new Set([...PAGE_SIZES, limit])]
            .sort((a, b) => a - b)
            .map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
        </select>
      </label>
      <div className="filter-actions">
        <button type="submit" className="button button-primary">
          Apply
        </button>
        <Link to="/nodes" className="button button-quiet">
          Reset
        </Link>
      </div>
    </form>
  );
}
