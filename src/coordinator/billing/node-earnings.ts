import { sql } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { formatWide } from "../../core/money.ts";
import type { NodeEarnings, NodeEarningsFigures } from "../../protocol/nodes.ts";
import { Leg, TransactionKind } from "./ledger-accounts.ts";
import { readWideSum, wideSum } from "./wide-sum.ts";
import type { ReadDb } from "../store/transaction.ts";

/** The recent window of a node's earnings (`last30d`), in ms. */
export const EARNINGS_RECENT_MS = 30 * 86_400_000;

type Figure = keyof NodeEarningsFigures;

/**
 * What a node's served time earned, from the ledger's postings alone (`GET /v1/nodes/:id/earnings`):
 * every settlement and slash transaction whose lease (`clusterId/seq`, scheduler/leases.ts) the
 * node served, summed per posting currency, in all and over the last 30 days (by transaction time).
 *
 *   served       = Σ −escrow  leg served        (gross released for the node's minutes)
 *   supplierFees = Σ treasury leg supplier-fee
 *   burned       = Σ burn     leg burn
 *   paidOut      = Σ earnings leg payout        (in the payout currency where it was converted)
 *   slashed      = Σ −earnings leg slash        (forfeits taken from the supplier for this node)
 * In each lease currency served = paidOut + supplierFees + burned unless some payouts were
 * converted: then the converted part appears as paidOut in the payout currency instead.
 *
 * One query: the node's lease ids come from `cluster_nodes` (index on node_id) and meet the
 * ledger's lease index; the window is a CASE inside the same sums. A node's lifetime sums may pass
 * the 64-bit range: they are summed and answered wider (wide-sum.ts).
 */
export async function nodeEarnings(
  db: ReadDb,
  nodeId: string,
  nowMs: number,
): Promise<NodeEarnings> {
  const node = await db
    .selectFrom("nodes")
    .select("id")
    .where("id", "=", nodeId)
    .executeTakeFirst();
  if (node === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no node ${nodeId}`);
  const sinceMs = nowMs - EARNINGS_RECENT_MS;
  const total = wideSum(sql`p.amount`);
  const recent = wideSum(sql`CASE WHEN t.created_at >= ${sinceMs} THEN p.amount ELSE 0 END`);
  const leaseIds = db
    .selectFrom("cluster_nodes as cn")
    .select(sql<string>`cn.cluster_id || '/' || CAST(cn.seq AS TEXT)`.as("lease_id"))
    .where("cn.node_id", "=", nodeId);
  const rows = await db
    .selectFrom("ledger_transactions as t")
    .innerJoin("ledger_postings as p", "p.transaction_id", "t.id")
    .select([
      "p.currency",
      "p.leg",
      total.high.as("total_high"),
      total.low.as("total_low"),
      recent.high.as("recent_high"),
      recent.low.as("recent_low"),
    ])
    .where("t.lease_id", "in", leaseIds)
    .where("t.kind", "in", [TransactionKind.SETTLEMENT, TransactionKind.SLASH])
    .where((eb) =>
      eb.or([
        eb("p.leg", "in", [Leg.SERVED, Leg.SUPPLIER_FEE, Leg.BURN, Leg.PAYOUT]),
        eb.and([eb("p.leg", "=", Leg.SLASH), eb(sql`substr(p.account, 1, 9)`, "=", "earnings:")]),
      ]),
    )
    .groupBy(["p.currency", "p.leg"])
    .execute();
  return earningsFromRows(nodeId, nowMs, sinceMs, rows);
}

const FIGURE_OF_LEG: Readonly<Record<string, { figure: Figure; sign: 1 | -1 }>> = {
  [Leg.SERVED]: { figure: "served", sign: -1 },
  [Leg.SUPPLIER_FEE]: { figure: "supplierFees", sign: 1 },
  [Leg.BURN]: { figure: "burned", sign: 1 },
  [Leg.PAYOUT]: { figure: "paidOut", sign: 1 },
  [Leg.SLASH]: { figure: "slashed", sign: -1 },
};

const FIGURES: readonly Figure[] = ["served", "paidOut", "supplierFees", "burned", "slashed"];

interface EarningsRow {
  readonly currency: string;
  readonly leg: string;
  readonly total_high: string | null;
  readonly total_low: string | null;
  readonly recent_high: string | null;
  readonly recent_low: string | null;
}

/** Postings summed per (currency, leg) → the answer, currencies in name order. */
export function earningsFromRows(
  nodeId: string,
  nowMs: number,
  sinceMs: number,
  rows: readonly EarningsRow[],
): NodeEarnings {
  const byCurrency = new Map<string, { all: Map<Figure, bigint>; recent: Map<Figure, bigint> }>();
  for (const row of rows) {
    const target = FIGURE_OF_LEG[row.leg];
    if (target === undefined) continue;
    let entry = byCurrency.get(row.currency);
    if (entry === undefined)
      byCurrency.set(row.currency, (entry = { all: new Map(), recent: new Map() }));
    const sign = BigInt(target.sign);
    const all = readWideSum(row.total_high, row.total_low) * sign;
    const recent = readWideSum(row.recent_high, row.recent_low) * sign;
    entry.all.set(target.figure, (entry.all.get(target.figure) ?? 0n) + all);
    entry.recent.set(target.figure, (entry.recent.get(target.figure) ?? 0n) + recent);
  }
  const view = (m: Map<Figure, bigint>) =>
    Object.fromEntries(FIGURES.map((f) => [f, formatWide(m.get(f) ?? 0n)])) as NodeEarningsFigures;
  return {
    nodeId,
    asOf: new Date(nowMs).toISOString(),
    recentFrom: new Date(sinceMs).toISOString(),
    currencies: [...byCurrency.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([currency, e]) => ({
        currency: currency as NodeEarnings["currencies"][number]["currency"],
        allTime: view(e.all),
        last30d: view(e.recent),
      })),
  };
}
