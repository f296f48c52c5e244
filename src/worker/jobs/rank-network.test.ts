import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rankNetworkMode } from "./rank-network.ts";

describe("rankNetworkMode", () => {
  const all = { isolation: true, overlay: true };
  it("isolates whenever it can, with the overlay when the cluster has one", () => {
    assert.deepEqual(rankNetworkMode({ internet: true, overlay: false }, all), {
      ok: true,
      mode: "isolated",
    });
    assert.deepEqual(rankNetworkMode({ internet: false, overlay: true }, all), {
      ok: true,
      mode: "overlay",
    });
  });

  it("runs on the host's network only where the rank may use the internet", () => {
    const none = { isolation: false, overlay: false };
    assert.deepEqual(rankNetworkMode({ internet: true, overlay: true }, none), {
      ok: true,
      mode: "shared",
    });
    const noOverlay = { isolation: true, overlay: false };
    assert.deepEqual(rankNetworkMode({ internet: true, overlay: true }, noOverlay), {
      ok: true,
      mode: "shared",
    });
    const refused = rankNetworkMode({ internet: false, overlay: true }, noOverlay);
    assert.equal(refused.ok, false);
    assert.match(!refused.ok ? refused.problem : "", /a cluster overlay \(WireGuard\)/);
    assert.equal(rankNetworkMode({ internet: false, overlay: false }, none).ok, false);
  });

  it("keeps the host's network for a job-start that says nothing (an older coordinator)", () => {
    assert.deepEqual(rankNetworkMode(undefined, all), { ok: true, mode: "shared" });
  });
});
