import { Fragment, useCallback } from "react";
import { z } from "zod";
import type { EmissionView, RewardBlockSummary, TokenView } from "../../../src/protocol/token.ts";
import { client } from "../api.ts";
import { Pager } from "../components/pager.tsx";
import { Empty, ErrorState, Loaded, Loading } from "../components/states.tsx";
import { TableHead, type Column } from "../components/table-head.tsx";
import { formatCount, formatDateTime, formatTdm } from "../format.ts";
import { useRefreshOnSamples } from "../live.tsx";
import { Link, linkTo, useQuery } from "../router.tsx";
import { useAsync } from "../use-async.ts";

/**
 * The token: TDM's supply (`GET /v1/token`), the emission schedule (`GET /v1/token/emission`) and
 * the hourly reward blocks, newest first (`GET /v1/token/blocks`), each linking to its nodes.
 * Nothing here has an event of its own, so the page refetches at each live network sample.
 */
const BLOCKS_PAGE = 20;
const BLOCK_COLUMNS: Column[] = [
  { label: "Hour", className: "num" },
  "Began",
  { label: "Minted", className: "num" },
  { label: "Nodes rewarded", className: "num" },
  { label: "Refused", className: "num hide-sm" },
];

const TokenQuery = z.object({
  cursor: z
    .string()
    .regex(/^\d{1,15}$/)
    .optional(),
});

const SUPPLY_ROWS: ReadonlyArray<[keyof TokenView, string]> = [
  ["maxSupply", "Maximum supply"],
  ["genesis", "Genesis"],
  ["emitted", "Emitted"],
  ["burned", "Burned"],
  ["totalSupply", "Total supply"],
  ["staked", "Staked"],
  ["circulating", "Circulating"],
];

function tokenUrl(cursor?: string): string {
  return linkTo("/token", { cursor });
}

export function TokenPage() {
  const parsed = useQuery(TokenQuery);
  const supply = useAsync(() => client.tokenSupply(), "supply");
  const emission = useAsync(() => client.tokenEmission(), "emission");
  const refresh = useCallback(() => {
    supply.reload();
    emission.reload();
  }, [supply.reload, emission.reload]);
  useRefreshOnSamples(refresh);
  return (
    <>
      <h1 tabIndex={-1}>Token</h1>
      <p className="subtitle">
        TDM: a fixed maximum, genesis, hourly emission to staked and verified nodes, and the 0.5 %
        rental burn.
      </p>
      <div className="panels">
        <section className="panel" aria-labelledby="supply-title">
          <h2 id="supply-title">Supply</h2>
          <Loaded state={supply} what="the supply">
            {(token) => <Supply token={token} />}
          </Loaded>
        </section>
        <section className="panel" aria-labelledby="emission-title">
          <h2 id="emission-title">Emission</h2>
          <Loaded state={emission} what="the emission schedule">
            {(view) => <Emission view={view} />}
          </Loaded>
        </section>
        <section className="panel panel-wide" aria-labelledby="blocks-title">
          <h2 id="blocks-title">Reward blocks</h2>
          {parsed.success ? (
            <Blocks cursor={parsed.data.cursor} />
          ) : (
            <div className="state state-error" role="alert">
              <p>This link's page is not valid.</p>
              <Link to="/token" className="button">
                Show the latest blocks
              </Link>
            </div>
          )}
        </section>
      </div>
    </>
  );
}

function Supply({ token }: { token: TokenView }) {
  return (
    <dl className="facts" data-testid="token-supply">
      {SUPPLY_ROWS.map(([key, label]) => (
        <Fragment key={key}>
          <dt>{label}</dt>
          <dd className="num" data-testid={`supply-${key}`}>
            {formatTdm(token[key])}
          </dd>
        </Fragment>
      ))}
    </dl>
  );
}

/** This hour's emission and the 20 years of the schedule, each year's bar against year 1. */
function Emission({ view }: { view: EmissionView }) {
  const first = Number(view.years[0]?.total ?? "0");
  return (
    <>
      <dl className="facts">
        <dt>This hour</dt>
        <dd data-testid="emission-hourly">{formatTdm(view.hourly)}</dd>
        <dt>Hour</dt>
        <dd>
          {view.hour < 0 ? "before genesis" : formatCount(view.hour)} (genesis{" "}
          <time dateTime={view.genesisAt}>{formatDateTime(view.genesisAt)}</time>)
        </dd>
      </dl>
      <div className="table-scroll">
        <table className="table table-compact" data-testid="emission-years">
          <caption className="visually-hidden">Emission per year from genesis</caption>
          <TableHead columns={[{ label: "Year", className: "num" }, "Emitted", ""]} />
          <tbody>
            {view.years.map((y) => (
              <tr key={y.year}>
                <td className="num">{y.year}</td>
                <td className="num">{formatTdm(y.total)}</td>
                <td className="emission-bar" aria-hidden="true">
                  <span
                    className="meter-fill"
                    style={{ width: `${first > 0 ? (Number(y.total) / first) * 100 : 0}%` }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Blocks({ cursor }: { cursor: string | undefined }) {
  const page = useAsync(
    () => client.rewardBlocks({ limit: BLOCKS_PAGE, ...(cursor === undefined ? {} : { cursor }) }),
    tokenUrl(cursor),
    { keepPrevious: true },
  );
  useRefreshOnSamples(page.reload);
  if (page.data === undefined)
    return page.error === undefined ? (
      <Loading what="reward blocks" />
    ) : (
      <ErrorState error={page.error} onRetry={page.reload} />
    );
  if (page.data.items.length === 0)
    return (
      <Empty>No reward block yet: the first is made when the first hour after genesis ends.</Empty>
    );
  return (
    <>
      <div className="table-scroll" aria-busy={page.loading}>
        <table className="table" data-testid="blocks-table">
          <caption className="visually-hidden">Reward blocks, newest first</caption>
          <TableHead columns={BLOCK_COLUMNS} />
          <tbody>
            {page.data.items.map((block) => (
              <BlockRow key={block.hour} block={block} />
            ))}
          </tbody>
        </table>
      </div>
      <Pager urlFor={tokenUrl} nextCursor={page.data.nextCursor} cursor={cursor} />
    </>
  );
}

function BlockRow({ block }: { block: RewardBlockSummary }) {
  return (
    <tr data-hour={block.hour}>
      <td className="num">
        <Link to={`/token/blocks/${block.hour}`}>{formatCount(block.hour)}</Link>
      </td>
      <td>
        <time dateTime={block.startsAt}>{formatDateTime(block.startsAt)}</time>
      </td>
      <td className="num" data-testid="block-minted">
        {formatTdm(block.minted)}
      </td>
      <td className="num" data-testid="block-rewarded">
        {formatCount(block.rewarded)} of {formatCount(block.nominated)}
      </td>
      <td className="num hide-sm">{formatCount(block.refused)}</td>
    </tr>
  );
}
