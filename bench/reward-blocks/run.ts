/**
 * bench/reward-blocks: one hourly reward block over a large staked network, through the real
 * RewardBlocks code and the ledger's database guard, on SQLite (a WAL file, as the coordinator
 * opens it) and on a private PostgreSQL server (fsync off, as the tests start it).
 *
 *   node --max-old-space-size=6144 --import tsx bench/reward-blocks/run.ts \
 *        [--db sqlite|postgres|both] [--nodes 100000] [--stakes-per-node 10] [--samples 300]
 *
 * Seeds (not timed): `--nodes` nodes (bench/support/fleet.ts's spread of GPU models and counts, all
 * verified and online the whole hour), `--stakes-per-node` active positions on each (1,000 TDM
 * each: over every node's minimum), their escrows funded in the ledger. Then times:
 *   plan   the block's reads and split alone (planBlock in a read transaction),
 *   block  RewardBlocks.pay(hour 0): plan again + mint + one payout transaction per node
 *          (Ledger.recordMany, batched) + the block's rows, one DB transaction, committed;
 *          `ledgerS` is the span from the mint to the last payout batch.
 *   token  GET /v1/token's read (tokenSupply) at that size: p50/p99 over `--samples` calls, and the
 *          same through the route's cache (TokenFigures).
 * Prints one JSON object on stdout.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { Leg, stakeAccount } from "../../src/coordinator/billing/ledger-accounts.ts";
import { Ledger, requestHash, type RecordInput } from "../../src/coordinator/billing/ledger.ts";
import { ledgerAudit } from "../../src/coordinator/billing/audit.ts";
import { planBlock } from "../../src/coordinator/economics/reward-block-plan.ts";
import { RewardBlocks } from "../../src/coordinator/economics/reward-blocks.ts";
import { ensureGenesis, tokenSupply } from "../../src/coordinator/economics/supply.ts";
import { TokenFigures } from "../../src/coordinator/economics/token-figures.ts";
import { CoordinatorEvents } from "../../src/coordinator/events.ts";
import { openStore, type Store } from "../../src/coordinator/store/database.ts";
import { runInTransaction } from "../../src/coordinator/store/transaction.ts";
import { DEFAULT_EMISSION_SCHEDULE, MS_PER_HOUR } from "../../src/core/emission.ts";
import { money, neg, units } from "../../src/core/money.ts";
import { DEFAULT_COMMISSION_BPS, DEFAULT_STAKE_MINIMUMS } from "../../src/core/stake.ts";
import { IdPrefix, newId } from "../../src/protocol/ids.ts";
import { createDatabase, startPostgres } from "../../test/support/postgres.ts";
import { seedFleet } from "../support/fleet.ts";
import { machine, progress, round2, summarize } from "../support/stats.ts";

const { values: args } = parseArgs({
  options: {
    db: { type: "string", default: "both" },
    nodes: { type: "string", default: "100000" },
    "stakes-per-node": { type: "string", default: "10" },
    samples: { type: "string", default: "300" },
  },
});
const NODES = Number(args.nodes);
const PER_NODE = Number(args["stakes-per-node"]);
const SAMPLES = Number(args.samples);
const GENESIS_MS = Date.UTC(2026, 0, 1);
const STAKE = money("1000");
const STAKERS = Math.max(1, Math.ceil((NODES * PER_NODE) / 100));
const ROWS = 1000;

async function seed(store: Store, ledger: Ledger): Promise<void> {
  const db = store.db;
  await ensureGenesis(db, ledger, GENESIS_MS - MS_PER_HOUR);
  const fleet = await seedFleet(db, {
    count: NODES,
    nowMs: GENESIS_MS - MS_PER_HOUR,
    allOffline: true,
  });
  await db.updateTable("nodes").set({ status: "available" }).execute();
  const stakers = Array.from({ length: STAKERS }, () => newId(IdPrefix.account, GENESIS_MS));
  await runInTransaction(db, async (tx) => {
    for (let i = 0; i < stakers.length; i += ROWS)
      await tx
        .insertInto("accounts")
        .values(
          stakers
            .slice(i, i + ROWS)
            .map((id) => ({ id, roles: "consumer", created_at: GENESIS_MS, disabled_at: null })),
        )
        .execute();
    const intervals = fleet.map((n) => ({
      node_id: n.nodeId,
      start_ms: GENESIS_MS - 2 * MS_PER_HOUR,
      end_ms: null,
    }));
    for (let i = 0; i < intervals.length; i += ROWS)
      await tx
        .insertInto("node_intervals")
        .values(intervals.slice(i, i + ROWS))
        .execute();
  });
  progress(`seeded ${NODES} nodes; funding ${NODES * PER_NODE} stakes`);
  let s = 0;
  for (let at = 0; at < fleet.length; at += 10_000) {
    await runInTransaction(db, async (tx) => {
      const inputs: RecordInput[] = [];
      const rows = [];
      for (const node of fleet.slice(at, at + 10_000)) {
        const ids = Array.from({ length: PER_NODE }, () => newId(IdPrefix.stake, GENESIS_MS));
        for (const id of ids)
          rows.push({
            id,
            node_id: node.nodeId,
            account_id: stakers[s++ % stakers.length]!,
            amount: STAKE,
            status: "active",
            created_at: GENESIS_MS - MS_PER_HOUR,
            create_key: `bench:${id}`,
          });
        inputs.push({
          idempotencyKey: `bench-stake:${node.nodeId}`,
          kind: "stake",
          requestHash: requestHash("stake", { nodeId: node.nodeId }),
          metadata: {},
          response: () => null,
          nowMs: GENESIS_MS - MS_PER_HOUR,
          postings: [
            {
              account: "external:bench",
              currency: "TDM",
              amount: neg(units(STAKE * BigInt(PER_NODE))),
              leg: Leg.DEPOSIT,
            },
            ...ids.map((id) => ({
              account: stakeAccount(id),
              currency: "TDM" as const,
              amount: STAKE,
              leg: Leg.STAKE,
            })),
          ],
        });
      }
      await ledger.recordMany(tx, inputs);
      for (let i = 0; i < rows.length; i += ROWS)
        await tx
          .insertInto("stakes")
          .values(rows.slice(i, i + ROWS))
          .execute();
    });
    progress(`funded stakes of ${Math.min(at + 10_000, fleet.length)} nodes`);
  }
}

async function count(
  store: Store,
  table: "ledger_postings" | "ledger_transactions" | "reward_block_nodes",
) {
  const { rows } = await sql<{
    n: string;
  }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ${sql.table(table)}`.execute(store.db);
  return Number(rows[0]?.n);
}

async function measure(store: Store) {
  const ledger = new Ledger(store.dialect);
  const t0 = performance.now();
  await seed(store, ledger);
  const seedS = round2((performance.now() - t0) / 1000);
  const rules = {
    genesisAtMs: GENESIS_MS,
    schedule: DEFAULT_EMISSION_SCHEDULE,
    minimums: DEFAULT_STAKE_MINIMUMS,
    defaultCommissionBps: DEFAULT_COMMISSION_BPS,
  };
  const before = {
    postings: await count(store, "ledger_postings"),
    transactions: await count(store, "ledger_transactions"),
  };
  const p0 = performance.now();
  const plan = await runInTransaction(store.db, (tx) => planBlock(tx, 0, rules));
  const planS = round2((performance.now() - p0) / 1000);
  const eligible = plan.nodes.filter((n) => n.reason === null).length;
  progress(`plan: ${planS} s, ${eligible} of ${plan.nodes.length} eligible`);
  let firstBatchAt: number | undefined;
  let lastBatchAt = 0;
  const blocks = new RewardBlocks(store.db, ledger, new CoordinatorEvents(), rules, {
    maxBlocksPerRun: 1,
    batch: 10_000,
    onProgress: (_hour, paid, of) => {
      lastBatchAt = performance.now();
      firstBatchAt ??= lastBatchAt;
      if (paid === of || paid % 50_000 === 0) progress(`paid ${paid} of ${of}`);
    },
  });
  const b0 = performance.now();
  const outcome = await blocks.pay(0, GENESIS_MS + MS_PER_HOUR + 1);
  const blockS = round2((performance.now() - b0) / 1000);
  progress(`block: ${blockS} s`);
  const after = {
    postings: await count(store, "ledger_postings"),
    transactions: await count(store, "ledger_transactions"),
  };
  const raw: number[] = [];
  for (let i = 0; i < Math.min(SAMPLES, 50); i++) {
    const s0 = performance.now();
    await tokenSupply(store.db);
    raw.push(performance.now() - s0);
  }
  const figures = new TokenFigures(store.db, new CoordinatorEvents(), { now: () => Date.now() });
  const cached: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const s0 = performance.now();
    await figures.view();
    cached.push(performance.now() - s0);
  }
  const a0 = performance.now();
  const audit = await ledgerAudit(store.db);
  const auditS = round2((performance.now() - a0) / 1000);
  return {
    seedS,
    nodes: NODES,
    stakes: NODES * PER_NODE,
    eligible,
    planS,
    blockS,
    ledgerS: firstBatchAt === undefined ? 0 : round2((lastBatchAt - b0) / 1000),
    written: {
      transactions: after.transactions - before.transactions,
      postings: after.postings - before.postings,
      blockNodeRows: await count(store, "reward_block_nodes"),
      reportedPostings: outcome.postings,
    },
    ledgerTotals: after,
    tokenRawMs: summarize(raw),
    tokenCachedMs: summarize(cached),
    auditOk: audit.ok,
    auditS,
  };
}

async function main() {
  const result: Record<string, unknown> = {
    machine: machine(),
    nodes: NODES,
    stakesPerNode: PER_NODE,
  };
  if (args.db === "sqlite" || args.db === "both") {
    const dir = await mkdtemp(join(tmpdir(), "bench-rewards-"));
    const store = await openStore({ kind: "sqlite", path: join(dir, "coordinator.db") });
    try {
      result.sqlite = await measure(store);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
  if (args.db === "postgres" || args.db === "both") {
    const server = await startPostgres();
    try {
      const store = await openStore({
        kind: "postgres",
        url: await createDatabase(server.url, "bench_rewards"),
      });
      try {
        result.postgres = await measure(store);
      } finally {
        await store.close();
      }
    } finally {
      await server.stop();
    }
  }
  process.stdout.write(JSON.stringify(result, null, 2) + "\n");
}

await main();
