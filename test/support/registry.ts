/**
 * The coordinator's registry classes over a fresh store, wired as the composition root wires them,
 * with a manual clock: for tests of accounts, devices, node lifecycle and node queries.
 */
import type { TestContext } from "node:test";
import { CoordinatorEvents, type CoordinatorEventMap } from "../../src/coordinator/events.ts";
import { AccountRegistry } from "../../src/coordinator/registry/accounts.ts";
import { DeviceRegistry } from "../../src/coordinator/registry/devices.ts";
import { NodeLifecycle } from "../../src/coordinator/registry/node-lifecycle.ts";
import { NodeQueries } from "../../src/coordinator/registry/node-queries.ts";
import type { DeviceRegistration } from "../../src/protocol/devices.ts";
import { ManualClock, type DatabaseUnderTest, type TestStore } from "./coordinator.ts";
import { newDeviceKey, signedRegistration, type TestDevice } from "./devices.ts";

/** Reads a node's history as an admin does: every row as written (the public view names no account). */
export const ADMIN_VIEWER = { accountId: "", admin: true } as const;

export interface Registry {
  store: TestStore;
  clock: ManualClock;
  events: CoordinatorEvents;
  /** Every event published, in order. */
  published: Array<{ name: keyof CoordinatorEventMap; payload: unknown }>;
  accounts: AccountRegistry;
  devices: DeviceRegistry;
  lifecycle: NodeLifecycle;
  nodes: NodeQueries;
  /** A supplier account made at setup. */
  supplierId: string;
  /** Registers a new device key for the supplier; answers the ids and the key. */
  register(
    fields: Omit<DeviceRegistration, "publicKey">,
    accountId?: string,
  ): Promise<{ deviceId: string; nodeId: string; device: TestDevice }>;
}

export async function openRegistry(db: DatabaseUnderTest, t: TestContext): Promise<Registry> {
  const store = await db.openStore();
  t.after(() => store.dispose());
  const clock = new ManualClock();
  const events = new CoordinatorEvents();
  const published: Registry["published"] = [];
  events.on("node:status", (payload) => published.push({ name: "node:status", payload }));
  events.on("device:revoked", (payload) => published.push({ name: "device:revoked", payload }));
  const accounts = new AccountRegistry(store.db);
  const devices = new DeviceRegistry(store.db, events);
  const { accountId: supplierId } = await accounts.createAccount(["supplier"], clock.now());
  return {
    store,
    clock,
    events,
    published,
    accounts,
    devices,
    lifecycle: new NodeLifecycle(store.db, events),
    nodes: new NodeQueries(store.db),
    supplierId,
    async register(fields, accountId = supplierId) {
      const device = newDeviceKey();
      const result = await devices.register(
        accountId,
        signedRegistration(device, fields),
        clock.now(),
      );
      return { deviceId: result.deviceId, nodeId: result.nodeId, device };
    },
  };
}
