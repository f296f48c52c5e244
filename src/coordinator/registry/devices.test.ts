import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { REGION_IDS } from "../../core/regions.ts";
import type { HardwareReport } from "../../protocol/hardware.ts";
import { dumpDatabase, forEachDatabase } from "../../../test/support/coordinator.ts";
import {
  fixtureHardware,
  hardwareWith,
  newDeviceKey,
  signedRegistration,
} from "../../../test/support/devices.ts";
import { ADMIN_VIEWER, openRegistry } from "../../../test/support/registry.ts";
import { DUPLICATE_GPU_FLAG } from "./devices.ts";

const refusedWith = (code: ErrorCode) => (e: unknown) =>
  e instanceof TandemError && e.code === code;

/** The node's history as an admin reads it (the public one names no account). */
const historyOf = (r: Awaited<ReturnType<typeof openRegistry>>, nodeId: string) =>
  r.nodes.history(nodeId, 500, undefined, ADMIN_VIEWER).then((page) => page.items);

forEachDatabase("device registration", (db) => {
  test("registering a device creates an offline node with its hardware and history", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("h100x8");
    const device = newDeviceKey();
    const result = await r.devices.register(
      r.supplierId,
      signedRegistration(device, { region: "eu-west", zone: "eu-west-a", hardware }),
      r.clock.now(),
    );
    assert.equal(result.created, true);
    assert.match(result.deviceId, /^dev_[0-9a-z]{26}$/);
    assert.match(result.nodeId, /^node_[0-9a-z]{26}$/);

    const node = await r.nodes.get(result.nodeId);
    assert.equal(node.deviceId, result.deviceId);
    assert.equal(node.status, "offline");
    assert.equal(node.region, "eu-west");
    assert.equal(node.zone, "eu-west-a");
    assert.equal(node.gpuModel, "h100-80gb");
    assert.equal(node.gpuCount, 8);
    assert.equal(node.vramMiB, 81559);
    assert.deepEqual(node.flags, []);
    assert.equal(node.verified, false);
    assert.equal(node.registeredAt, new Date(r.clock.now()).toISOString());

    const [registered, ...rest] = await historyOf(r, result.nodeId);
    assert.deepEqual(rest, []);
    assert.equal(registered?.action, "registered");
    assert.equal(registered?.actor, `account:${r.supplierId}`);
    assert.equal(registered?.from, null);
    assert.equal(registered?.to, "offline");

    const uuids = await r.store.db.selectFrom("gpu_uuids").select("uuid").execute();
    assert.deepEqual(uuids.map((u) => u.uuid).sort(), hardware.gpus.map((g) => g.uuid).sort());

    const stored = await r.store.db.selectFrom("devices").selectAll().executeTakeFirstOrThrow();
    assert.equal(stored.public_key, device.publicKey);
    assert.equal(stored.account_id, r.supplierId);
  });

  test("a report signed by another key, or changed after signing, is BAD_SIGNATURE", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("rtx4090");
    const device = newDeviceKey();
    const before = await dumpDatabase(r.store);
    const fields = { region: "us-east", zone: "us-east-b", hardware };

    const foreign = signedRegistration(device, fields, newDeviceKey().privateKey);
    await assert.rejects(
      r.devices.register(r.supplierId, foreign, r.clock.now()),
      refusedWith(ErrorCode.BAD_SIGNATURE),
    );
    const tampered = { ...signedRegistration(device, fields), zone: "us-east-c" };
    await assert.rejects(
      r.devices.register(r.supplierId, tampered, r.clock.now()),
      refusedWith(ErrorCode.BAD_SIGNATURE),
    );
    const moreVram = signedRegistration(device, fields);
    moreVram.hardware = hardwareWith([{ ...hardware.gpus[0]!, memoryTotalMiB: 81920 }]);
    await assert.rejects(
      r.devices.register(r.supplierId, moreVram, r.clock.now()),
      refusedWith(ErrorCode.BAD_SIGNATURE),
    );
    assert.deepEqual(await dumpDatabase(r.store), before);
  });

  test("an unknown region or a zone outside its region is UNKNOWN_REGION", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("none");
    const before = await dumpDatabase(r.store);
    const eu = ["eu-west-a", "eu-west-b", "eu-west-c"];
    for (const [region, zone, valid] of [
      ["mars-north", "mars-north-a", REGION_IDS],
      ["eu-west", "eu-west-d", eu],
      ["eu-west", "us-east-a", eu],
      ["EU-WEST", "EU-WEST-A", REGION_IDS],
    ] as const) {
      await assert.rejects(
        r.devices.register(
          r.supplierId,
          signedRegistration(newDeviceKey(), { region, zone, hardware }),
          r.clock.now(),
        ),
        (e: unknown) => {
          assert.ok(refusedWith(ErrorCode.UNKNOWN_REGION)(e));
          const error = e as TandemError;
          assert.equal(error.details?.["region"], region);
          // The refusal names what is valid: the zones of a known region, else every region.
          assert.deepEqual(error.details?.["valid"], [...valid]);
          assert.ok(error.message.endsWith(`${valid.join(", ")} (tandem catalog regions)`));
          return true;
        },
      );
    }
    assert.deepEqual(await dumpDatabase(r.store), before);
  });

  test("re-registration is idempotent and records metadata only when something changed", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("rtx3060ti");
    const device = newDeviceKey();
    const fields = { region: "eu-west", zone: "eu-west-a", hardware };
    const first = await r.devices.register(
      r.supplierId,
      signedRegistration(device, fields),
      r.clock.now(),
    );

    r.clock.advance(60_000);
    const again = await r.devices.register(
      r.supplierId,
      signedRegistration(device, fields),
      r.clock.now(),
    );
    assert.deepEqual(again, { deviceId: first.deviceId, nodeId: first.nodeId, created: false });
    assert.deepEqual(
      (await historyOf(r, first.nodeId)).map((h) => h.action),
      ["registered"],
    );

    // A restart reads fresh telemetry and free disk: live readings, not a change of the machine.
    const sameMachine: HardwareReport = {
      ...hardware,
      diskFreeMiB: hardware.diskFreeMiB - 1234,
      gpus: hardware.gpus.map((g) => ({ ...g, utilizationPct: 87, temperatureC: 71 })),
    };
    r.clock.advance(60_000);
    await r.devices.register(
      r.supplierId,
      signedRegistration(device, { ...fields, hardware: sameMachine }),
      r.clock.now(),
    );
    assert.deepEqual(
      (await historyOf(r, first.nodeId)).map((h) => h.action),
      ["registered"],
    );
    assert.equal((await r.nodes.get(first.nodeId)).diskFreeMiB, sameMachine.diskFreeMiB);

    // A move to another zone and a new card are changes, recorded once each time.
    const upgraded = hardwareWith((await fixtureHardware("rtx4090")).gpus, {
      diskFreeMiB: sameMachine.diskFreeMiB,
    });
    const movedAt = r.clock.advance(60_000);
    await r.devices.register(
      r.supplierId,
      signedRegistration(device, { region: "eu-west", zone: "eu-west-b", hardware: upgraded }),
      movedAt,
    );
    await r.devices.register(
      r.supplierId,
      signedRegistration(device, { region: "eu-west", zone: "eu-west-b", hardware: upgraded }),
      r.clock.advance(60_000),
    );
    const history = await historyOf(r, first.nodeId);
    assert.deepEqual(
      history.map((h) => h.action),
      ["registered", "metadata"],
    );
    assert.deepEqual(history[1]?.detail, {
      changed: ["zone", "hardware"],
      unverified: "hardware changed",
    });
    assert.equal(history[1]?.actor, `account:${r.supplierId}`);
    assert.equal(history[1]?.at, new Date(movedAt).toISOString());
    const node = await r.nodes.get(first.nodeId);
    assert.equal(node.zone, "eu-west-b");
    assert.equal(node.gpuModel, "rtx-4090");
    assert.equal(node.vramMiB, 24564);
    assert.equal((await r.store.db.selectFrom("devices").selectAll().execute()).length, 1);
  });

  test("another account cannot take over a registered device key", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("none");
    const device = newDeviceKey();
    const fields = { region: "us-west", zone: "us-west-a", hardware };
    await r.devices.register(r.supplierId, signedRegistration(device, fields), r.clock.now());
    const before = await dumpDatabase(r.store);
    const { accountId: thief } = await r.accounts.createAccount(["supplier"], r.clock.now());
    const withThief = await dumpDatabase(r.store);
    await assert.rejects(
      r.devices.register(thief, signedRegistration(device, fields), r.clock.now()),
      refusedWith(ErrorCode.CONFLICT),
    );
    assert.deepEqual((await dumpDatabase(r.store)).nodes, before.nodes);
    assert.deepEqual(await dumpDatabase(r.store), withThief);
  });

  test("a revoked device stays revoked: re-registration is DEVICE_REVOKED", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("rtx4090");
    const { deviceId, nodeId, device } = await r.register({
      region: "us-east",
      zone: "us-east-a",
      hardware,
    });
    const revokedAt = r.clock.advance(5000);
    assert.deepEqual(await r.devices.revoke(deviceId, "account:acct_admin", "stolen", revokedAt), {
      revokedAtMs: revokedAt,
      nodeId,
    });
    // Revoking again changes nothing and answers the first time.
    r.clock.advance(5000);
    assert.deepEqual(
      await r.devices.revoke(deviceId, "account:acct_admin", "again", r.clock.now()),
      { revokedAtMs: revokedAt, nodeId },
    );
    assert.deepEqual(
      r.published.filter((e) => e.name === "device:revoked").map((e) => e.payload),
      [{ deviceId, nodeId, atMs: revokedAt }],
    );
    await assert.rejects(
      r.devices.register(
        r.supplierId,
        signedRegistration(device, { region: "us-east", zone: "us-east-a", hardware }),
        r.clock.now(),
      ),
      refusedWith(ErrorCode.DEVICE_REVOKED),
    );
    const history = await historyOf(r, nodeId);
    assert.deepEqual(
      history.map((h) => [h.action, h.from, h.to, h.actor, h.detail["reason"]]),
      [
        ["registered", null, "offline", `account:${r.supplierId}`, undefined],
        ["status", "offline", "revoked", "account:acct_admin", "stolen"],
      ],
    );
    assert.equal((await r.devices.findForConnect(deviceId))?.status, "revoked");
    await assert.rejects(
      r.devices.revoke("dev_00000000000000000000000000", "admin", "x", r.clock.now()),
      refusedWith(ErrorCode.NOT_FOUND),
    );
  });

  test("two devices reporting one GPU UUID are both flagged duplicate-gpu-uuid", async (t) => {
    const r = await openRegistry(db, t);
    const card = await fixtureHardware("rtx4090");
    const honest = await r.register({ region: "eu-west", zone: "eu-west-a", hardware: card });
    const other = await r.register({
      region: "eu-west",
      zone: "eu-west-a",
      hardware: hardwareWith([
        { ...card.gpus[0]!, uuid: "GPU-00000000-1111-2222-3333-444444444444" },
      ]),
    });
    assert.deepEqual((await r.nodes.get(honest.nodeId)).flags, []);

    // A second account's device claims the same card.
    const { accountId } = await r.accounts.createAccount(["supplier"], r.clock.now());
    const sybil = await r.register(
      { region: "us-east", zone: "us-east-a", hardware: hardwareWith(card.gpus) },
      accountId,
    );
    for (const nodeId of [honest.nodeId, sybil.nodeId]) {
      const node = await r.nodes.get(nodeId);
      assert.deepEqual(node.flags, [DUPLICATE_GPU_FLAG], nodeId);
      const flagged = (await historyOf(r, nodeId)).filter((h) => h.action === "flagged");
      assert.deepEqual(
        flagged.map((h) => [h.actor, h.detail]),
        [["coordinator", { flag: DUPLICATE_GPU_FLAG, uuids: [card.gpus[0]!.uuid] }]],
      );
    }
    assert.deepEqual((await r.nodes.get(other.nodeId)).flags, []);

    // Re-registering a flagged device neither duplicates the flag nor its history.
    await r.devices.register(
      accountId,
      signedRegistration(sybil.device, {
        region: "us-east",
        zone: "us-east-b",
        hardware: hardwareWith(card.gpus),
      }),
      r.clock.advance(1000),
    );
    assert.deepEqual((await r.nodes.get(sybil.nodeId)).flags, [DUPLICATE_GPU_FLAG]);
    assert.equal(
      (await historyOf(r, sybil.nodeId)).filter((h) => h.action === "flagged").length,
      1,
    );
  });
});
