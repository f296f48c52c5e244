// Unauthenticated worker connections are capped per remote address and in total, and close when
// they do not prove a key within the (short) authentication deadline (issue 18: 300 were held
// open). Real WebSockets from several loopback addresses.
import assert from "node:assert/strict";
import { it } from "node:test";
import WebSocket from "ws";
import { CoordinatorConfig } from "../src/coordinator/config.ts";
import { forEachDatabase } from "./support/coordinator.ts";
import { availableWorker } from "./support/workers.ts";

/** A raw connection from `localAddress`: its first message, or how it closed. */
async function open(url: string, localAddress: string, t: { after(fn: () => unknown): void }) {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/v1/workers/connect`, {
    localAddress,
  });
  t.after(() => socket.terminate());
  const first = await new Promise<{ challenge: true } | { closed: number; reason: string }>(
    (resolve, reject) => {
      socket.once("message", () => resolve({ challenge: true }));
      socket.once("close", (code, reason) => resolve({ closed: code, reason: reason.toString() }));
      socket.once("error", reject);
    },
  );
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    if ("closed" in first) resolve({ code: first.closed, reason: first.reason });
    else socket.once("close", (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  return { socket, first, closed };
}

forEachDatabase("worker gateway caps", (db) => {
  it("caps connections waiting to authenticate per address and in total", async (t) => {
    const tc = await db.startCoordinator({
      config: { maxUnauthenticatedPerAddress: 2, maxUnauthenticated: 3, authTimeoutMs: 60_000 },
    });
    t.after(() => tc.close());
    const a1 = await open(tc.url, "127.0.0.1", t);
    const a2 = await open(tc.url, "127.0.0.1", t);
    assert.deepEqual([a1.first, a2.first], [{ challenge: true }, { challenge: true }]);
    const a3 = await open(tc.url, "127.0.0.1", t);
    assert.deepEqual(a3.first, {
      closed: 1013,
      reason: "too many connections waiting to authenticate",
    });
    assert.deepEqual((await open(tc.url, "127.0.0.2", t)).first, { challenge: true });
    assert.deepEqual(
      (await open(tc.url, "127.0.0.3", t)).first,
      { closed: 1013, reason: "too many connections waiting to authenticate" },
      "three wait in all",
    );
    // A closed one frees its place.
    a1.socket.close();
    await a1.closed;
    for (let i = 0; i < 100; i++) {
      const again = await open(tc.url, "127.0.0.1", t);
      if ("challenge" in again.first) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail("the freed place was not given again");
  });

  it("releases a connection's place once it authenticates", async (t) => {
    const tc = await db.startCoordinator({
      config: { maxUnauthenticatedPerAddress: 1, maxUnauthenticated: 1 },
    });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const worker = await availableWorker(tc, supplier.apiKey, "eu-west-a");
    t.after(() => worker.socket.terminate());
    assert.deepEqual((await open(tc.url, "127.0.0.1", t)).first, { challenge: true });
  });

  it("closes a connection that does not authenticate in time", async (t) => {
    assert.equal(CoordinatorConfig.parse({ home: "/x" }).authTimeoutMs, 3000, "default deadline");
    const tc = await db.startCoordinator({ config: { authTimeoutMs: 200 } });
    t.after(() => tc.close());
    const idle = await open(tc.url, "127.0.0.1", t);
    assert.deepEqual(idle.first, { challenge: true });
    assert.deepEqual(await idle.closed, { code: 4401, reason: "authentication timed out" });
  });
});
