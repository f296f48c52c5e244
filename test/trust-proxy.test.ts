/**
 * A coordinator behind a TLS reverse proxy (`--trust-proxy`): a worker is known by the address
 * the proxy names in X-Forwarded-For (what its cluster peers are told to reach it at), and only
 * when the connection comes from a trusted proxy; otherwise the header is ignored, so a worker
 * cannot claim another machine's address. A bad `--trust-proxy` stops the start.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startCoordinator } from "../src/coordinator/main.ts";
import { startTestCoordinator } from "./support/coordinator.ts";
import {
  connectWorker,
  fixtureHardware,
  newDeviceKey,
  signedRegistration,
} from "./support/devices.ts";

/**
 * What the coordinator records for a worker that connects saying X-Forwarded-For `xff` (and, in
 * its auth, `localAddress` as its own): the address it is seen at, and whether it is behind NAT.
 */
async function seen(trustProxy: string | undefined, xff: string, localAddress?: string) {
  const tc = await startTestCoordinator({
    database: "sqlite",
    config: trustProxy === undefined ? {} : { trustProxy },
  });
  try {
    const { apiKey } = await tc.signUp(["supplier"]);
    const device = newDeviceKey();
    const hardware = await fixtureHardware("none");
    const { deviceId } = await tc
      .client(apiKey)
      .registerDevice(
        signedRegistration(device, { region: "eu-west", zone: "eu-west-a", hardware }),
      );
    const worker = await connectWorker(
      tc.url,
      deviceId,
      device.privateKey,
      { "x-forwarded-for": xff },
      localAddress,
    );
    const address = tc.coordinator.gateway.addressOf(worker.nodeId);
    const behindNat = tc.coordinator.gateway.behindNat(worker.nodeId);
    worker.socket.close();
    return { address, behindNat };
  } finally {
    await tc.close();
  }
}

const seenAddress = async (trustProxy: string | undefined, xff: string) =>
  (await seen(trustProxy, xff)).address;

test("behind a trusted proxy a worker is seen at the address the proxy names", async () => {
  assert.equal(await seenAddress("127.0.0.1", "203.0.113.7"), "203.0.113.7");
  // A client-sent header the proxy appended to: the proxy's own entry (the last) counts.
  assert.equal(await seenAddress("127.0.0.1/8", "198.51.100.9, 203.0.113.7"), "203.0.113.7");
});

test("behind a trusted proxy, a worker is behind NAT when its own address is not the one named", async () => {
  assert.deepEqual(await seen("127.0.0.1", "203.0.113.7", "203.0.113.7"), {
    address: "203.0.113.7",
    behindNat: false,
  });
  assert.deepEqual(await seen("127.0.0.1", "203.0.113.7", "192.168.1.20"), {
    address: "203.0.113.7",
    behindNat: true,
  });
  // Not trusted: the socket's peer counts, and the worker on it says the same address.
  assert.deepEqual(await seen(undefined, "203.0.113.7", "127.0.0.1"), {
    address: "127.0.0.1",
    behindNat: false,
  });
});

test("without --trust-proxy, or from an untrusted peer, X-Forwarded-For is ignored", async () => {
  assert.equal(await seenAddress(undefined, "203.0.113.7"), "127.0.0.1");
  assert.equal(await seenAddress("10.0.0.1", "203.0.113.7"), "127.0.0.1");
});

test("a --trust-proxy that is not addresses or CIDRs stops the start", async (t) => {
  const home = await mkdtemp(join(tmpdir(), "tandem-trust-proxy-"));
  t.after(() => rm(home, { recursive: true, force: true }));
  for (const trustProxy of ["proxy.example", "10.0.0.0/33", "127.0.0.1,", "::1/129"])
    await assert.rejects(
      startCoordinator({ home, port: 0, logLevel: "silent", trustProxy }),
      /invalid coordinator config: trustProxy: expected addresses or CIDRs/,
      trustProxy,
    );
});
