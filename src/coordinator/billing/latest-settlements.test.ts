/**
 * A settlement pass reads each lease's latest settlement: the right row whatever else the lease
 * recorded, and by one backwards index seek per lease however many settlements it has, also when
 * the planner's statistics predate most of them (PostgreSQL once read and sorted a lease's whole
 * history here).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sql } from "kysely";
import {
  TEST_NOW,
  deployed,
  openBilling,
  type BillingHarness,
} from "../../../test/support/billing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { money } from "../../core/money.ts";
import { latestSettlements, latestSettlementsQuery } from "./latest-settlements.ts";

const HISTORY = 40;
const LEASES = 50;

/**
 * One cluster of LEASES + 1 leases: all but the last settled every minute up to HISTORY (2,000
 * settlements: enough for a planner to weigh an index against a scan), lease 1 also slashed, the
 * last never settled.
 */
async function settledCluster(h: BillingHarness, afterDeploy?: () => Promise<void>) {
  const { consumer, supplier, clusterId, lease } = await deployed(h, {
    price: "1.5",
    minutes: 600,
    nodes: LEASES + 1,
  });
  await afterDeploy?.();
  const settled = Array.from({ length: LEASES }, (_, i) => i);
  let last: Awaited<ReturnType<typeof h.billing.settleLeases>> = [];
  for (let m = 1; m <= HISTORY; m++)
    last = await h.billing.transaction((tx) =>
      h.billing.settleLeases(
        tx,
        settled.map((i) => lease(i, m)),
      ),
    );
  await h.billing.transaction((tx) =>
    h.billing.slash(tx, {
      clusterId,
      leaseId: lease(1, 0).leaseId,
      nodeId: "node_1",
      supplierAccountId: supplier,
      consumerAccountId: consumer,
      currency: "USDC",
      amount: money("0.1"),
      reason: "test",
      nowMs: TEST_NOW,
    }),
  );
  const leaseIds = Array.from({ length: LEASES + 1 }, (_, i) => lease(i, 0).leaseId);
  return { clusterId, leaseIds, last };
}

forEachDatabase("latest settlements", (db) => {
  test("each lease's settlement with the most minutes; a slash or no settlement is no answer", async (t) => {
    const h = await openBilling(db, t);
    const { clusterId, leaseIds, last } = await settledCluster(h);
    const rows = await latestSettlements(h.store.db, h.store.dialect, [
      ...leaseIds,
      leaseIds[0]!,
      "lease_unknown",
    ]);
    assert.deepEqual(rows.map((r) => r.lease_id).sort(), leaseIds.slice(0, LEASES).sort());
    for (const row of rows) {
      const i = leaseIds.indexOf(row.lease_id);
      const result = last[i];
      assert.ok(result?.ok === true && result.transactionId !== null);
      const stored = JSON.parse(row.response) as {
        transactionId: string;
        total: { gross: string };
      };
      assert.equal(stored.transactionId, result.transactionId);
      assert.equal(stored.total.gross, result.total.gross.toString());
      assert.equal(stored.total.gross, "1000000"); // 40 minutes at 1.5/h
      assert.equal(row.cluster_id, clusterId);
    }
    assert.deepEqual(await latestSettlements(h.store.db, h.store.dialect, []), []);
  });

  test("one backwards index seek per lease, with statistics from before the history and after", async (t) => {
    const h = await openBilling(db, t);
    // Statistics taken while the ledger held only the deploy: the stale case.
    const analyze = () => sql`ANALYZE`.execute(h.store.db).then(() => undefined);
    const { leaseIds } = await settledCluster(h, analyze);
    const plan = async () => {
      const query = latestSettlementsQuery(h.store.dialect, leaseIds);
      if (h.store.dialect === "sqlite") {
        const { rows } = await sql<{ detail: string }>`EXPLAIN QUERY PLAN ${query}`.execute(
          h.store.db,
        );
        return rows.map((r) => r.detail).join("\n");
      }
      const { rows } = await sql<{ "QUERY PLAN": string }>`EXPLAIN ${query}`.execute(h.store.db);
      return rows.map((r) => r["QUERY PLAN"]).join("\n");
    };
    for (const when of ["stale statistics", "fresh statistics"]) {
      if (when === "fresh statistics") await analyze();
      const text = await plan();
      if (h.store.dialect === "sqlite") {
        assert.match(
          text,
          /SEARCH x USING (COVERING )?INDEX ledger_transactions_lease \(lease_id=\?/,
          when,
        );
        assert.doesNotMatch(text, /TEMP B-TREE|SCAN (t|x)\b/, `${when}:\n${text}`);
      } else {
        assert.match(text, /Limit[\s\S]*Index Scan Backward using ledger_transactions_lease/, when);
        assert.doesNotMatch(text, /Sort|Seq Scan on ledger_transactions|Hash/, `${when}:\n${text}`);
      }
    }
  });
});
