/**
 * A small staked network for reward block tests, over the real registry, lifecycle, stake and
 * ledger code: nodes registered with distinct GPUs, connected (and verified) at chosen instants,
 * stakes funded through the manual rail.
 */
import { Ledger } from "../../src/coordinator/billing/ledger.ts";
import { ensureGenesis } from "../../src/coordinator/economics/supply.ts";
import { DEFAULT_STAKE_OPTIONS, StakeService } from "../../src/coordinator/economics/stakes.ts";
import {
  RewardBlocks,
  type RewardBlockOptions,
} from "../../src/coordinator/economics/reward-blocks.ts";
import { CoordinatorEvents } from "../../src/coordinator/events.ts";
import { DeviceRegistry } from "../../src/coordinator/registry/devices.ts";
import { NodeLifecycle } from "../../src/coordinator/registry/node-lifecycle.ts";
import { DEFAULT_EMISSION_SCHEDULE, MS_PER_HOUR } from "../../src/core/emission.ts";
import { money, type Money } from "../../src/core/money.ts";
import { units } from "../../src/core/money.ts";
import type { StakeMinimums } from "../../src/core/stake.ts";
import type { HardwareReport } from "../../src/protocol/hardware.ts";
import type { BillingHarness } from "./billing.ts";
import { fixtureGpus, hardwareWith, newDeviceKey, signedRegistration } from "./devices.ts";

/** Genesis of the test networks: hour 0 starts here. */
export const GENESIS_MS = Date.UTC(2026, 0, 1);
export const hourStart = (hour: number) => GENESIS_MS + hour * MS_PER_HOUR;

/** Small minimums so tests stake little: 10 TDM per data-center GPU, 5 per desk GPU, 1 per CPU node. */
export const TEST_MINIMUMS: StakeMinimums = {
  perDatacenterGpu: money("10"),
  perConsumerGpu: money("5"),
  perCpuNode: money("1"),
};

export type Machine = "rtx4090" | "h100x8" | "cpu16";

let serial = 0;

async function hardwareOf(machine: Machine): Promise<HardwareReport> {
  if (machine === "cpu16")
    return hardwareWith([], { cpu: { model: "AMD EPYC", cores: 16, arch: "x64" } });
  const n = ++serial;
  // Distinct UUIDs per node: shared ones would flag both nodes as duplicates.
  const gpus = (await fixtureGpus(machine)).map((g, i) => ({
    ...g,
    uuid: `GPU-reward-${process.pid}-${n}-${i}`,
  }));
  return hardwareWith(gpus);
}

export class RewardNetwork {
  readonly events = new CoordinatorEvents();
  readonly ledger: Ledger;
  readonly stakes: StakeService;
  readonly devices: DeviceRegistry;
  readonly lifecycle: NodeLifecycle;
  private keys = 0;

  constructor(readonly h: BillingHarness) {
    this.ledger = new Ledger(h.store.dialect);
    this.stakes = new StakeService(h.store.db, this.ledger, this.events, {
      ...DEFAULT_STAKE_OPTIONS,
      minimums: TEST_MINIMUMS,
    });
    this.devices = new DeviceRegistry(h.store.db, this.events);
    this.lifecycle = new NodeLifecycle(h.store.db, this.events);
  }

  static async open(h: BillingHarness): Promise<RewardNetwork> {
    const net = new RewardNetwork(h);
    await ensureGenesis(h.store.db, net.ledger, GENESIS_MS);
    return net;
  }

  blocks(options?: RewardBlockOptions): RewardBlocks {
    return new RewardBlocks(
      this.h.store.db,
      this.ledger,
      this.events,
      {
        genesisAtMs: GENESIS_MS,
        schedule: DEFAULT_EMISSION_SCHEDULE,
        minimums: TEST_MINIMUMS,
        defaultCommissionBps: 1000,
      },
      options,
    );
  }

  /** A node of `owner`, online from `onlineAtMs` (verified unless told), registered just before. */
  async node(
    owner: string,
    machine: Machine,
    opts: { onlineAtMs: number; verified?: boolean },
  ): Promise<string> {
    const registration = signedRegistration(newDeviceKey(), {
      region: "eu-west",
      zone: "eu-west-a",
      hardware: await hardwareOf(machine),
    });
    const { nodeId } = await this.devices.register(owner, registration, opts.onlineAtMs - 1);
    const ctx = { actor: "test", reason: "test", nowMs: opts.onlineAtMs };
    await this.lifecycle.apply(nodeId, { type: "connect", verified: false }, ctx);
    if (opts.verified !== false) await this.lifecycle.apply(nodeId, { type: "verify" }, ctx);
    return nodeId;
  }

  /** `who` funds and stakes `amount` TDM on `nodeId`; answers the position's id. */
  async stake(who: string, nodeId: string, amount: string, nowMs = GENESIS_MS): Promise<string> {
    await this.h.fund(who, "TDM", money(amount));
    const answer = await this.stakes.stake({
      requestedBy: who,
      idempotencyKey: `k${++this.keys}`,
      nodeId,
      amount: money(amount),
      nowMs,
    });
    return answer.body.id;
  }

  /** A ledger account's TDM from its postings. */
  tdm(account: string): Promise<Money> {
    return this.h.balanceOf(account, "TDM").then((b) => units(b));
  }
}
