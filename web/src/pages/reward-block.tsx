import { z } from "zod";
import { IdPrefix, idSchema } from "../../../src/protocol/ids.ts";
import type { RewardBlockNode, RewardBlockSummary } from "../../../src/protocol/token.ts";
import { client, isNotFound } from "../api.ts";
import { Pager } from "../components/pager.tsx";
import { Empty, ErrorState, Loading } from "../components/states.tsx";
import { TableHead, type Column } from "../components/table-head.tsx";
import { formatCount, formatDateTime, formatTdm } from "../format.ts";
import { Link, linkTo, useQuery } from "../router.tsx";
import { useAsync } from "../use-async.ts";

/**
 * One hourly reward block (`GET /v1/token/blocks/:hour`): what it minted and, a page at a time by
 * node id, every node it nominated with its share and commission, or why it was refused. A block
 * never changes once made, so this page does not refresh live.
 */
const NODES_PAGE = 50;
const NODE_COLUMNS: Column[] = [
  "Node",
  "Outcome",
  { label: "Share", className: "num" },
  { label: "Commission", className: "num" },
  { label: "Staked", className: "num hide-sm" },
  { label: "TFLOPS", className: "num hide-sm" },
];

const BlockQuery = z.object({ cursor: idSchema(IdPrefix.node).optional() });

export function RewardBlockPage({ hour }: { hour: number }) {
  const parsed = useQuery(BlockQuery);
  const cursor = parsed.success ? parsed.data.cursor : undefined;
  const url = (c: string | undefined) => linkTo(`/token/blocks/${hour}`, { cursor: c });
  const page = useAsync(
    () =>
      client.rewardBlock(hour, { limit: NODES_PAGE, ...(cursor === undefined ? {} : { cursor }) }),
    url(cursor),
    { keepPrevious: true },
  );
  const heading = (
    <>
      <p className="breadcrumb">
        <Link to="/token">Token</Link> /
      </p>
      <h1 tabIndex={-1}>Reward block {formatCount(hour)}</h1>
    </>
  );
  if (page.data === undefined)
    return (
      <>
        {heading}
        {page.error === undefined ? (
          <Loading what="the block" />
        ) : isNotFound(page.error) ? (
          <Empty>
            No block for this hour yet. <Link to="/token">See the latest blocks</Link>
          </Empty>
        ) : (
          <ErrorState error={page.error} onRetry={page.reload} />
        )}
      </>
    );
  const { block, nodes, nextCursor } = page.data;
  return (
    <>
      {heading}
      <BlockFacts block={block} />
      <section className="panel panel-wide" aria-labelledby="block-nodes-title">
        <h2 id="block-nodes-title">Nodes nominated</h2>
        {nodes.length === 0 ? (
          <Empty>No node was nominated this hour.</Empty>
        ) : (
          <>
            <div className="table-scroll" aria-busy={page.loading}>
              <table className="table table-compact" data-testid="block-nodes">
                <caption className="visually-hidden">Nodes nominated, by id</caption>
                <TableHead columns={NODE_COLUMNS} />
                <tbody>
                  {nodes.map((n) => (
                    <NodeRow key={n.nodeId} node={n} />
                  ))}
                </tbody>
              </table>
            </div>
            <Pager urlFor={url} nextCursor={nextCursor} cursor={cursor} />
          </>
        )}
      </section>
    </>
  );
}

function BlockFacts({ block }: { block: RewardBlockSummary }) {
  return (
    <dl className="facts facts-inline" data-testid="block-facts">
      <dt>Hour began</dt>
      <dd>
        <time dateTime={block.startsAt}>{formatDateTime(block.startsAt)}</time>
      </dd>
      <dt>Emission</dt>
      <dd>{formatTdm(block.emission)}</dd>
      <dt>Minted</dt>
      <dd data-testid="block-minted">{formatTdm(block.minted)}</dd>
      <dt>Nodes</dt>
      <dd>
        {formatCount(block.nominated)} nominated, {formatCount(block.rewarded)} rewarded,{" "}
        {formatCount(block.refused)} refused
      </dd>
      <dt>Proven capacity</dt>
      <dd>{block.capacityTflops} TFLOPS FP32</dd>
      <dt>Made</dt>
      <dd>
        <time dateTime={block.createdAt}>{formatDateTime(block.createdAt)}</time>
      </dd>
    </dl>
  );
}

function NodeRow({ node: n }: { node: RewardBlockNode }) {
  return (
    <tr data-node-id={n.nodeId}>
      <td>
        <Link to={`/nodes/${n.nodeId}`} className="mono">
          {n.nodeId}
        </Link>
      </td>
      <td>{n.reason === null ? "rewarded" : `refused: ${n.reason.replaceAll("-", " ")}`}</td>
      <td className="num" data-testid="node-share">
        {formatTdm(n.share)}
      </td>
      <td className="num">{formatTdm(n.commission)}</td>
      <td className="num hide-sm">{formatTdm(n.staked)}</td>
      <td className="num hide-sm">{n.capacityTflops}</td>
    </tr>
  );
}
