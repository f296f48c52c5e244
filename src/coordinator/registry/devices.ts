import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { gpuModelByName } from "../../core/gpu-catalog.ts";
import { REGION_IDS, isKnownZone, zonesOf } from "../../core/regions.ts";
import { registrationPayload, verifyPayload } from "../../protocol/device-signing.ts";
import type { DeviceRegistration, RegisterDeviceRequest } from "../../protocol/devices.ts";
import { HardwareReport } from "../../protocol/hardware.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { toNumber } from "../store/rows.ts";
import { consumeEnrollmentToken, recordEnrolledDevice } from "./enrollment-tokens.ts";
import { appendHistory } from "./node-history.ts";
import { addNodeFlag } from "./node-flags.ts";
import { applyInTx } from "./node-lifecycle.ts";
import { runInTransaction } from "../store/transaction.ts";

/** Flag set on every node that reports a GPU UUID another device also reports (Sybil suspicion). */
export const DUPLICATE_GPU_FLAG = "duplicate-gpu-uuid";

export interface RegisteredDevice {
  deviceId: string;
  nodeId: string;
  created: boolean;
}

/**
 * Devices: one worker install, one Ed25519 key, one node. Registration is idempotent per key: a
 * worker registers on every start, and a changed hardware report or location is recorded as a
 * metadata change in the node's history.
 */
export class DeviceRegistry {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly events: CoordinatorEvents,
  ) {}

  /** Registers with the account's own authority: its API key, or the device's signed request. */
  register(
    accountId: string,
    request: RegisterDeviceRequest,
    nowMs: number,
  ): Promise<RegisteredDevice> {
    return this.registerAs({ accountId }, request, nowMs);
  }

  /**
   * Registers with a single-use enrollment token (enrollment-tokens.ts), consumed in the same
   * transaction as the device's insert: a refused token changes nothing, a refused registration
   * leaves the token unused.
   */
  enroll(
    enrollmentToken: string,
    request: RegisterDeviceRequest,
    nowMs: number,
  ): Promise<RegisteredDevice> {
    return this.registerAs({ enrollmentToken }, request, nowMs);
  }

  private async registerAs(
    credential: { accountId: string } | { enrollmentToken: string },
    request: RegisterDeviceRequest,
    nowMs: number,
  ): Promise<RegisteredDevice> {
    const { signature, publicKey, region, zone, hardware } = request;
    const registration: DeviceRegistration = { publicKey, region, zone, hardware };
    if (!verifyPayload(registration.publicKey, registrationPayload(registration), signature)) {
      throw new TandemError(
        ErrorCode.BAD_SIGNATURE,
        "the hardware report is not signed by this device key",
      );
    }
    if (!isKnownZone(registration.region, registration.zone)) {
      const zones = zonesOf(registration.region);
      const valid = zones === undefined ? [...REGION_IDS] : [...zones];
      throw new TandemError(
        ErrorCode.UNKNOWN_REGION,
        `unknown region/zone ${registration.region}/${registration.zone}; ` +
          (zones === undefined ? "regions: " : `zones of ${registration.region}: `) +
          `${valid.join(", ")} (tandem catalog regions)`,
        { details: { region: registration.region, zone: registration.zone, valid } },
      );
    }
    const summary = summarize(registration.hardware);
    const hardwareJson = JSON.stringify(registration.hardware);

    const registered = await runInTransaction(this.db, async (tx) => {
      const { accountId, tokenId } =
        "enrollmentToken" in credential
          ? await consumeEnrollmentToken(tx, credential.enrollmentToken, nowMs)
          : { accountId: credential.accountId, tokenId: undefined };
      const actor = `account:${accountId}`;
      const existing = await tx
        .selectFrom("devices")
        .innerJoin("nodes", "nodes.device_id", "devices.id")
        .select([
          "devices.id as deviceId",
          "devices.account_id as accountId",
          "devices.status as deviceStatus",
          "nodes.id as nodeId",
          "nodes.region",
          "nodes.zone",
          "nodes.hardware",
        ])
        .where("devices.public_key", "=", registration.publicKey)
        .executeTakeFirst();

      if (existing !== undefined) {
        if (existing.accountId !== accountId) {
          throw new TandemError(
            ErrorCode.CONFLICT,
            "this device key is registered to another account",
          );
        }
        if (existing.deviceStatus === "revoked") {
          throw new TandemError(ErrorCode.DEVICE_REVOKED, `device ${existing.deviceId} is revoked`);
        }
        const changes = diffMetadata(
          existing,
          registration.region,
          registration.zone,
          registration.hardware,
        );
        if (changes.length === 0 && existing.hardware !== hardwareJson) {
          // Only live readings differ: keep them current without a history entry.
          await tx
            .updateTable("nodes")
            .set({ hardware: hardwareJson })
            .where("id", "=", existing.nodeId)
            .execute();
        }
        if (changes.length > 0) {
          await tx
            .updateTable("nodes")
            .set({
              region: registration.region,
              zone: registration.zone,
              hardware: hardwareJson,
              ...summary,
              // Other hardware must be proven anew: the node connects unverified.
              ...(changes.includes("hardware") ? { verified_at: null } : {}),
            })
            .where("id", "=", existing.nodeId)
            .execute();
          await appendHistory(tx, {
            nodeId: existing.nodeId,
            atMs: nowMs,
            actor,
            action: "metadata",
            detail: {
              changed: changes,
              ...(changes.includes("hardware") ? { unverified: "hardware changed" } : {}),
            },
          });
          await recordGpuUuids(tx, existing.nodeId, registration.hardware, nowMs);
        }
        if (tokenId !== undefined) await recordEnrolledDevice(tx, tokenId, existing.deviceId);
        return {
          deviceId: existing.deviceId,
          nodeId: existing.nodeId,
          created: false,
          changed: changes.length > 0,
        };
      }

      const deviceId = newId(IdPrefix.device, nowMs);
      const nodeId = newId(IdPrefix.node, nowMs);
      await tx
        .insertInto("devices")
        .values({
          id: deviceId,
          account_id: accountId,
          public_key: registration.publicKey,
          status: "active",
          created_at: nowMs,
          revoked_at: null,
        })
        .execute();
      if (tokenId !== undefined) await recordEnrolledDevice(tx, tokenId, deviceId);
      await tx
        .insertInto("nodes")
        .values({
          id: nodeId,
          device_id: deviceId,
          account_id: accountId,
          status: "offline",
          region: registration.region,
          zone: registration.zone,
          hardware: hardwareJson,
          ...summary,
          flags: "",
          verified_at: null,
          registered_at: nowMs,
          last_seen_at: null,
          uptime_24h: 0,
          uptime_7d: 0,
          uptime_30d: 0,
        })
        .execute();
      await appendHistory(tx, {
        nodeId,
        atMs: nowMs,
        actor,
        action: "registered",
        to: "offline",
        detail: {
          deviceId,
          region: registration.region,
          zone: registration.zone,
          gpus: summary.gpu_count,
          gpuModel: summary.gpu_model,
          ...(tokenId === undefined ? {} : { enrollmentTokenId: tokenId }),
        },
      });
      await recordGpuUuids(tx, nodeId, registration.hardware, nowMs);
      return { deviceId, nodeId, created: true, changed: true };
    });
    const { changed, ...result } = registered;
    const event = { nodeId: result.nodeId, atMs: nowMs };
    if (result.created) this.events.emit("node:registered", event);
    else if (changed) this.events.emit("node:metadata", event);
    return result;
  }

  /** The device's key, account and node, for the gateway's challenge and device-signed requests. */
  async findForConnect(deviceId: string) {
    return this.db
      .selectFrom("devices")
      .innerJoin("nodes", "nodes.device_id", "devices.id")
      .select([
        "devices.public_key as publicKey",
        "devices.status",
        "devices.account_id as accountId",
        "nodes.id as nodeId",
        "nodes.verified_at as verifiedAt",
        "nodes.hardware",
      ])
      .where("devices.id", "=", deviceId)
      .executeTakeFirst();
  }

  /** Revokes a device for good: its key is refused from now on and its node leaves the network. */
  async revoke(
    deviceId: string,
    actor: string,
    reason: string,
    nowMs: number,
  ): Promise<{ revokedAtMs: number; nodeId: string }> {
    const result = await runInTransaction(this.db, async (tx) => {
      const device = await tx
        .selectFrom("devices")
        .innerJoin("nodes", "nodes.device_id", "devices.id")
        .select(["devices.status", "devices.revoked_at", "nodes.id as nodeId"])
        .where("devices.id", "=", deviceId)
        .executeTakeFirst();
      if (device === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no device ${deviceId}`);
      if (device.status === "revoked" && device.revoked_at !== null) {
        return { revokedAtMs: toNumber(device.revoked_at), nodeId: device.nodeId, changed: false };
      }
      await tx
        .updateTable("devices")
        .set({ status: "revoked", revoked_at: nowMs })
        .where("id", "=", deviceId)
        .execute();
      await applyInTx(tx, device.nodeId, { type: "revoke" }, { actor, reason, nowMs });
      return { revokedAtMs: nowMs, nodeId: device.nodeId, changed: true };
    });
    if (result.changed)
      this.events.emit("device:revoked", { deviceId, nodeId: result.nodeId, atMs: nowMs });
    return { revokedAtMs: result.revokedAtMs, nodeId: result.nodeId };
  }
}

function summarize(hardware: HardwareReport) {
  const models = hardware.gpus.map((g) => gpuModelByName(g.name)?.id ?? null);
  return {
    gpu_model: models[0] ?? null,
    gpu_count: hardware.gpus.length,
    vram_mib:
      hardware.gpus.length === 0 ? 0 : Math.min(...hardware.gpus.map((g) => g.memoryTotalMiB)),
  };
}

function diffMetadata(
  existing: { region: string; zone: string; hardware: string },
  region: string,
  zone: string,
  hardware: HardwareReport,
): string[] {
  const changes: string[] = [];
  if (existing.region !== region) changes.push("region");
  if (existing.zone !== zone) changes.push("zone");
  if (machineOf(HardwareReport.parse(JSON.parse(existing.hardware))) !== machineOf(hardware))
    changes.push("hardware");
  return changes;
}

/**
 * The machine a report describes, without its live readings (GPU load and temperature, free disk):
 * those differ on every worker start and are not a change of the node's metadata.
 */
function machineOf(hardware: HardwareReport): string {
  return JSON.stringify({
    cpu: hardware.cpu,
    memoryTotalMiB: hardware.memoryTotalMiB,
    os: hardware.os,
    gpus: hardware.gpus.map((g) => ({
      index: g.index,
      uuid: g.uuid,
      name: g.name,
      memoryTotalMiB: g.memoryTotalMiB,
      driverVersion: g.driverVersion,
      pciBusId: g.pciBusId,
    })),
  });
}

/**
 * Records the node's GPU UUIDs and flags every node that shares one with another device: a UUID
 * is burned into the card, so two devices reporting it means at least one of them lies.
 */
async function recordGpuUuids(
  tx: Kysely<Database>,
  nodeId: string,
  hardware: HardwareReport,
  nowMs: number,
) {
  await tx.deleteFrom("gpu_uuids").where("node_id", "=", nodeId).execute();
  const uuids = [...new Set(hardware.gpus.map((g) => g.uuid))];
  if (uuids.length === 0) return;
  await tx
    .insertInto("gpu_uuids")
    .values(uuids.map((uuid) => ({ uuid, node_id: nodeId })))
    .execute();
  const sharing = await tx
    .selectFrom("gpu_uuids")
    .select(["node_id", "uuid"])
    .where("uuid", "in", uuids)
    .execute();
  const involved = new Set(sharing.map((r) => r.node_id));
  if (involved.size < 2) return;
  const duplicated = [...new Set(sharing.filter((r) => r.node_id !== nodeId).map((r) => r.uuid))];
  for (const id of involved)
    await addNodeFlag(tx, id, DUPLICATE_GPU_FLAG, { uuids: duplicated }, nowMs);
}
