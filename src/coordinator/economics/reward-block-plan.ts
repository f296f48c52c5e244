/**
 * What one reward block pays (economics/reward-blocks.ts writes it): read in the block's own DB
 * transaction — every node nominated for the hour, its online intervals, its active positions'
 * escrow balances and its commission — then split with the pure rules of core/rewards.ts.
 *
 * Nominated: every node not revoked that registered before the hour ended. Verification and flags
 * are read as they are when the block is made (a missed hour paid late is judged on today's proof;
 * the registry keeps no per-hour proof state), being online is judged on the recorded intervals of
 * that very hour. Only `active` positions share a node's reward, by their escrow balances (which
 * include rewards they earned before: rewards compound); `unbonding` stake has left, stays
 * slashable through its cooldown, and earns nothing — as it does not count toward the minimum.
 */
import { sql } from "kysely";
import type { EmissionSchedule } from "../../core/emission.ts";
import { MS_PER_HOUR, hourlyEmission } from "../../core/emission.ts";
import { ZERO, units, type Money } from "../../core/money.ts";
import {
  coversWhole,
  nodeShares,
  provenCapacity,
  refusalOf,
  splitNodeShare,
  type RefusalReason,
} from "../../core/rewards.ts";
import { minimumStake, type StakeMinimums } from "../../core/stake.ts";
import type { Tx } from "../billing/ledger.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";

/** What a block needs to know of the network's rules. */
export interface RewardRules {
  readonly genesisAtMs: number;
  readonly schedule: EmissionSchedule;
  readonly minimums: StakeMinimums;
  readonly defaultCommissionBps: number;
}

/** One nominated node's outcome. */
export interface PlannedNode {
  readonly nodeId: string;
  /** The node's owner (the supplier), who takes the commission. */
  readonly accountId: string;
  readonly reason: RefusalReason | null;
  readonly capacity: bigint;
  /** Active stake at the block. */
  readonly staked: Money;
  readonly share: Money;
  readonly commission: Money;
  /** Active positions and what each earned (rewarded nodes only). */
  readonly positions: ReadonlyArray<{ stakeId: string; amount: Money }>;
}

export interface BlockPlan {
  readonly hour: number;
  readonly startsAtMs: number;
  readonly emission: Money;
  /** The emission when a node is rewarded, else nothing: an hour without eligible nodes mints 0. */
  readonly minted: Money;
  readonly capacity: bigint;
  readonly nodes: readonly PlannedNode[];
}

interface Position {
  readonly stakeId: string;
  readonly balance: Money;
}

/** Reads the network as the block sees it and splits the hour's emission. */
export async function planBlock(tx: Tx, hour: number, rules: RewardRules): Promise<BlockPlan> {
  const startsAtMs = rules.genesisAtMs + hour * MS_PER_HOUR;
  const endsAtMs = startsAtMs + MS_PER_HOUR;
  const emission = hourlyEmission(hour, rules.schedule);
  const nodes = await tx
    .selectFrom("nodes")
    .select(["id", "account_id", "gpu_model", "gpu_count", "verified_at", "flags"])
    .select(
      sql<string | null>`CASE WHEN gpu_model IS NULL OR gpu_count <= 0 THEN hardware END`.as(
        "cpu_hardware",
      ),
    )
    .where("status", "<>", "revoked")
    .where("registered_at", "<", endsAtMs)
    .orderBy("id")
    .execute();
  const online = await wholeHourOnline(tx, startsAtMs, endsAtMs);
  const positions = await activePositions(tx);
  const commissions = new Map(
    (await tx.selectFrom("node_commissions").select(["node_id", "commission_bps"]).execute()).map(
      (r) => [r.node_id, r.commission_bps],
    ),
  );
  const judged = nodes.map((node) => {
    const held = positions.get(node.id) ?? [];
    const staked = units(held.reduce((a, p) => a + p.balance, 0n));
    const capacity = provenCapacity({
      gpuModel: node.gpu_model,
      gpuCount: node.gpu_count,
      cpuCores: cpuCoresOf(node.cpu_hardware),
    });
    const reason = refusalOf({
      verified: toNumberOrNull(node.verified_at) !== null,
      flagged: node.flags !== "",
      onlineAllHour: online.has(node.id),
      activeStake: staked,
      minimumStake: minimumStake(
        { gpuModel: node.gpu_model, gpuCount: node.gpu_count },
        rules.minimums,
      ),
      capacity,
    });
    return { node, held, staked, capacity, reason };
  });
  const eligible = judged.filter((j) => j.reason === null);
  const minted = eligible.length === 0 ? ZERO : emission;
  const shares = nodeShares(
    minted,
    eligible.map((j) => j.capacity),
  );
  const shareOf = new Map(eligible.map((j, i) => [j.node.id, shares[i]!]));
  const planned = judged.map((j): PlannedNode => {
    const base = {
      nodeId: j.node.id,
      accountId: j.node.account_id,
      reason: j.reason,
      capacity: j.capacity,
      staked: j.staked,
    };
    const share = shareOf.get(j.node.id);
    if (share === undefined) return { ...base, share: ZERO, commission: ZERO, positions: [] };
    const bps = commissions.get(j.node.id) ?? rules.defaultCommissionBps;
    const split = splitNodeShare(
      share,
      bps,
      j.held.map((p) => p.balance),
    );
    return {
      ...base,
      share,
      commission: split.commission,
      positions: j.held.map((p, i) => ({ stakeId: p.stakeId, amount: split.stakers[i]! })),
    };
  });
  return {
    hour,
    startsAtMs,
    emission,
    minted,
    capacity: eligible.reduce((a, j) => a + j.capacity, 0n),
    nodes: planned,
  };
}

/**
 * The nodes whose recorded online intervals cover [from, to) whole: one read of the intervals that
 * overlap the hour (a scan of `node_intervals`: it has no index by time; one row per connection).
 */
async function wholeHourOnline(tx: Tx, fromMs: number, toMs: number): Promise<Set<string>> {
  const rows = await tx
    .selectFrom("node_intervals")
    .select(["node_id", "start_ms", "end_ms"])
    .where("start_ms", "<", toMs)
    .where((eb) => eb.or([eb("end_ms", "is", null), eb("end_ms", ">", fromMs)]))
    .execute();
  const byNode = new Map<string, Array<{ startMs: number; endMs: number | null }>>();
  for (const r of rows) {
    const list = byNode.get(r.node_id) ?? [];
    list.push({ startMs: toNumber(r.start_ms), endMs: toNumberOrNull(r.end_ms) });
    byNode.set(r.node_id, list);
  }
  const whole = new Set<string>();
  for (const [nodeId, intervals] of byNode)
    if (coversWhole(intervals, fromMs, toMs)) whole.add(nodeId);
  return whole;
}

/**
 * Every active position's escrow balance, by node, in id order (ties in `proRata` go first). Two
 * reads joined here: the stake escrows' balance rows are one range of the balances' primary key,
 * where a join on the concatenated account name cost a lookup per position.
 */
async function activePositions(tx: Tx): Promise<Map<string, Position[]>> {
  const balances = await tx
    .selectFrom("ledger_balances")
    .select(["account", sql<string>`CAST(balance AS TEXT)`.as("balance")])
    .where("account", ">=", STAKE_ESCROW)
    .where("account", "<", STAKE_ESCROW_END)
    .where("currency", "=", "TDM")
    .execute();
  const balanceOf = new Map(balances.map((b) => [b.account, b.balance]));
  const rows = await tx
    .selectFrom("stakes")
    .select(["id", "node_id"])
    .where("status", "=", "active")
    .orderBy("node_id")
    .orderBy("id")
    .execute();
  const byNode = new Map<string, Position[]>();
  for (const r of rows) {
    const balance = units(balanceOf.get(`${STAKE_ESCROW}${r.id}`) ?? 0);
    if (balance <= 0n) continue;
    const list = byNode.get(r.node_id) ?? [];
    list.push({ stakeId: r.id, balance });
    byNode.set(r.node_id, list);
  }
  return byNode;
}

/** The stake escrows' account names: `escrow:clu_stake:<stk_…>`, and the name just past them. */
const STAKE_ESCROW = "escrow:clu_stake:";
const STAKE_ESCROW_END = "escrow:clu_stake;";

/** A CPU-only node's cores from its hardware report (0 when unreadable). */
function cpuCoresOf(hardware: string | null): number {
  if (hardware === null) return 0;
  try {
    const cores = (JSON.parse(hardware) as { cpu?: { cores?: unknown } }).cpu?.cores;
    return typeof cores === "number" && Number.isFinite(cores) ? cores : 0;
  } catch {
    return 0;
  }
}
