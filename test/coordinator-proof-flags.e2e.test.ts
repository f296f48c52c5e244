/**
 * `tandem coordinator`'s proof flags, on a real process: the sizes given are the sizes a worker is
 * asked to prove (a CPU node's cores at --proof-cpu-work, a GPU at --proof-gpu-k and the side
 * --proof-gpu-target-ms gives), a node answering them honestly becomes available, and a malformed
 * value stops the coordinator before it serves, naming the flag.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import {
  connectWorker,
  fixtureHardware,
  newDeviceKey,
  signedRegistration,
  type GpuFixture,
} from "./support/devices.ts";
import { eventually, spawnTandem, startCoordinatorProcess } from "./support/processes.ts";
import { FixtureProver, nextOpen, nextProve } from "./support/prover.ts";

test("the proof flags size the proofs a coordinator asks for", async (t) => {
  const home = await mkdtemp(join(tmpdir(), "tandem-proof-flags-"));
  const { coordinator, url } = await startCoordinatorProcess(home, [
    ...["--proof-cpu-work", "8x384", "--proof-cpu-core-gflops", "0.001"],
    ...["--proof-gpu-k", "128", "--proof-gpu-target-ms", "0.0001"],
  ]);
  t.after(async () => {
    await coordinator.kill();
    await rm(home, { recursive: true, force: true });
  });
  const supplier = await new TandemClient({ baseUrl: url }).createAccount({ roles: ["supplier"] });
  const client = new TandemClient({ baseUrl: url, apiKey: supplier.apiKey });

  const connect = async (fixture: GpuFixture) => {
    const device = newDeviceKey();
    const { deviceId } = await client.registerDevice(
      signedRegistration(device, {
        region: "eu-west",
        zone: "eu-west-a",
        hardware: await fixtureHardware(fixture),
      }),
    );
    return connectWorker(url, deviceId, device.privateKey);
  };

  const cpu = await connect("none");
  const prove = await nextProve(cpu);
  assert.ok(prove.devices.every((d) => d.kind === "cpu" && d.n === 8 && d.k === 384));
  const prover = new FixtureProver(prove);
  cpu.send(prover.commit());
  cpu.send(prover.reveal(await nextOpen(cpu)));
  await eventually(
    async () => ((await client.getNode(cpu.nodeId)).status === "available" ? true : undefined),
    "the CPU node to be available",
  );

  const gpu = await connect("rtx4090");
  const [card] = (await nextProve(gpu)).devices;
  assert.deepEqual([card?.kind, card?.n, card?.k], ["gpu", 256, 128]);
});

test("a malformed proof flag stops the coordinator, naming it", async (t) => {
  const home = await mkdtemp(join(tmpdir(), "tandem-proof-flags-"));
  t.after(() => rm(home, { recursive: true, force: true }));
  for (const flags of [
    ["--proof-cpu-work", "64by8192"],
    ["--proof-gpu-target-ms", "-5"],
    ["--proof-gpu-k", "1.5"],
  ]) {
    const run = spawnTandem(["coordinator", "--port", "0", ...flags], { TANDEM_HOME: home });
    assert.notEqual(await run.exited, 0, flags.join(" "));
    assert.match(run.stderr.join("\n"), new RegExp(flags[0]!), flags.join(" "));
  }
});
