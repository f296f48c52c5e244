// Slashes from stake end to end (issue 16 item 5, "Done when"): a real coordinator and 2 real
// workers as separate processes, each node staked by its supplier. A worker killed with SIGKILL
// mid-job is slashed one hour of its lease's rate, all of it from its stake, and the consumer's
// wallet receives that full hour; a job that exits non-zero on a staked node is the consumer's
// fault and slashes nothing.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { formatMoney, money, units } from "../src/core/money.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import {
  eventually,
  spawnTandem,
  type TandemProcess,
  SMALL_PROOF_FLAGS,
} from "./support/processes.ts";
import { enrollmentEnv } from "./support/workers.ts";

const WORKERS = 2;
const STAKE = "5";

describe("slashes paid from stake, with real processes", { timeout: 600_000 }, () => {
  const processes: TandemProcess[] = [];
  const workers = new Map<string, TandemProcess>();
  let home: string;
  let consumer: TandemClient;
  let supplier: TandemClient;
  let anonymous: TandemClient;
  let admin: TandemClient;

  const clusterWhere = (id: string, what: string, ready: (view: ClusterView) => boolean) =>
    eventually(
      async () => {
        const view = await consumer.getCluster(id);
        return ready(view) ? view : undefined;
      },
      `cluster ${id}: ${what}`,
      120_000,
    );
  const usdc = async () =>
    (await consumer.wallet()).balances.find((b) => b.currency === "USDC")?.wallet ?? "0.000000";

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "tandem-slash-e2e-"));
    const coordinator = spawnTandem(
      ["coordinator", ...SMALL_PROOF_FLAGS, "--port", "0", "--json", "--log-level", "warn"],
      { TANDEM_HOME: join(home, "c") },
    );
    processes.push(coordinator);
    const url = (JSON.parse(await coordinator.line(/^\{/, 60_000)) as { url: string }).url;
    anonymous = new TandemClient({ baseUrl: url });
    const seller = await anonymous.createAccount({ roles: ["supplier"] });
    supplier = new TandemClient({ baseUrl: url, apiKey: seller.apiKey });
    const buyer = await anonymous.createAccount({ roles: ["consumer"] });
    consumer = new TandemClient({ baseUrl: url, apiKey: buyer.apiKey });
    admin = new TandemClient({
      baseUrl: url,
      apiKey: (await readFile(join(home, "c", "admin.key"), "utf8")).trim(),
    });
    await admin.deposit({ accountId: buyer.accountId, currency: "USDC", amount: "50" }, "buyer");
    await admin.deposit({ accountId: seller.accountId, currency: "TDM", amount: "50" }, "seller");
    for (let i = 0; i < WORKERS; i++) {
      const worker = spawnTandem(
        [
          "worker",
          "start",
          "--region",
          "eu-west",
          "--zone",
          "eu-west-a",
          "--home",
          join(home, `w${i}`),
          "--json",
        ],
        await enrollmentEnv(url, seller.apiKey),
      );
      processes.push(worker);
      const { nodeId } = JSON.parse(await worker.line(/^\{/, 90_000)) as { nodeId: string };
      workers.set(nodeId, worker);
    }
    await eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === WORKERS ? true : undefined,
      `${WORKERS} available workers`,
      120_000,
    );
    for (const nodeId of workers.keys()) await supplier.stake({ nodeId, amount: STAKE });
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    await rm(home, { recursive: true, force: true });
  });

  it("a SIGKILLed staked worker's consumer receives the full hour of its rate from the stake", async () => {
    const deployed = await consumer.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["sh", "-c", "sleep 600"],
    });
    const running = await clusterWhere(deployed.id, "running", (v) => v.status === "running");
    const lease = running.nodes.find((n) => n.active && n.rank === 0)!;
    const before = money(await usdc());

    assert.equal(await workers.get(lease.nodeId)!.kill("SIGKILL"), "SIGKILL");
    const view = await clusterWhere(deployed.id, "slashed", (v) =>
      v.events.some((e) => e.type === "slashed"),
    );
    const context = JSON.stringify(view.events);
    const slashed = view.events.find((e) => e.type === "slashed")!.detail;
    const hour = lease.pricePerHour; // a slash is one hour of the lease's rate
    assert.deepEqual(
      [slashed.nodeId, slashed.owed, slashed.fromStake, slashed.fromEarnings, slashed.shortfall],
      [lease.nodeId, hour, hour, "0.000000", "0.000000"],
      context,
    );
    const costs = await consumer.clusterCosts(deployed.id);
    assert.equal(costs.slashCompensation, hour);
    // (A refund lands too should the cluster have failed for want of a replacement.)
    assert.equal(
      await usdc(),
      formatMoney(units(before + money(hour) + money(costs.refunded))),
      "the consumer's wallet got the whole hour",
    );
    const stake = await anonymous.nodeStake(lease.nodeId);
    assert.equal(
      stake.staked,
      formatMoney(units(money(STAKE) - 2n * money(hour))),
      "2 TDM per USD",
    );
    const history = await anonymous.nodeHistory(lease.nodeId, { limit: 500 });
    assert.deepEqual(
      history.items.filter((h) => h.action === "stake-slashed").map((h) => h.detail.amount),
      [formatMoney(units(2n * money(hour)))],
    );

    const ended = await consumer.terminateCluster(deployed.id);
    assert.ok(["terminated", "failed"].includes(ended.status), ended.status);
    assert.equal((await admin.ledgerAudit()).ok, true);
  });

  it("a job that exits non-zero on a staked node is the consumer's fault: no slash, the stake whole", async () => {
    const deployed = await consumer.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["sh", "-c", "sleep 2; exit 3"],
    });
    const done = await clusterWhere(deployed.id, "failed", (v) => v.status === "failed");
    const nodeId = done.nodes.find((n) => n.rank === 0)!.nodeId;
    assert.ok(!done.events.some((e) => e.type === "slashed" || e.type === "failover"));
    assert.equal((await consumer.clusterCosts(deployed.id)).slashCompensation, "0.000000");
    assert.equal((await anonymous.nodeStake(nodeId)).staked, formatMoney(money(STAKE)));
    assert.equal((await admin.ledgerAudit()).ok, true);
  });
});
