/**
 * The explorer's node page renders a proof-of-hardware history row (the detail shape of issue 15)
 * as a table per device, rendered here with React's server renderer from the explorer's own
 * component; any other row, or a row of another shape, keeps the one-line detail.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { ProofRecordView, proofOf } from "../web/src/components/proof-record.tsx";
import type { HistoryEntry } from "../src/protocol/nodes.ts";

const FAILED: HistoryEntry = {
  id: 7,
  at: "2026-12-07T12:00:00.000Z",
  actor: "coordinator",
  action: "verification-failed",
  from: "unverified",
  to: null,
  detail: {
    proofId: "prf_01",
    reason: "GPU-1f2e3d4c-0000 proved as rtx-3060-ti, not the claimed rtx-3080",
    devices: [
      {
        device: "GPU-1f2e3d4c-5b6a-7980-aabb-ccddeeff0011",
        kind: "gpu",
        claimedModel: "rtx-3080",
        provenModel: "rtx-3060-ti",
        n: 12544,
        k: 65536,
        fillMiB: 5120,
        computeMs: 9876.5,
        elapsedMs: 10012.3,
        tflops: 20.9,
        verdict: "too-slow",
        detail: "20.9 TFLOPS shown, below 29.75 (0.5 of the claim's 59.5)",
      },
      {
        device: "cpu:0",
        kind: "cpu",
        claimedModel: null,
        provenModel: null,
        n: 64,
        k: 8192,
        fillMiB: 0,
        computeMs: null,
        elapsedMs: null,
        tflops: null,
        verdict: "missing",
        detail: "",
      },
    ],
  },
};

function cells(html: string, device: string): string[] {
  const row = new RegExp(`<tr data-device="${device}"[^>]*>(.*?)</tr>`).exec(html);
  assert.ok(row, `a row for ${device} in ${html}`);
  return [...row[1]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) =>
    m[1]!
      .replace(/<[^>]+>/g, " ")
      .replace(/\s+/g, " ")
      .trim(),
  );
}

describe("explorer: a proof of hardware in a node's history", () => {
  it("renders a table per device: device, claimed → proven, n×k, ms, TFLOPS, verdict", () => {
    const proof = proofOf(FAILED);
    assert.ok(proof);
    const html = renderToStaticMarkup(createElement(ProofRecordView, { proof }));
    assert.match(html, /data-proof-id="prf_01"/);
    assert.match(html, /proved as rtx-3060-ti, not the claimed rtx-3080/);
    assert.match(html, /title="GPU-1f2e3d4c-5b6a-7980-aabb-ccddeeff0011"/);
    assert.deepEqual(cells(html, "GPU-1f2e3d4c-5b6a-7980-aabb-ccddeeff0011"), [
      "GPU-1f2e3d4c…",
      "rtx-3080 → rtx-3060-ti",
      "12,544×65,536",
      "9,876.5",
      "10,012.3",
      "20.9",
      "too slow 20.9 TFLOPS shown, below 29.75 (0.5 of the claim&#x27;s 59.5)",
    ]);
    assert.deepEqual(cells(html, "cpu:0"), [
      "cpu:0",
      "CPU core → —",
      "64×8,192",
      "—",
      "—",
      "—",
      "no answer",
    ]);
    assert.doesNotMatch(html, /devices:|"verdict"/, "no raw key: value dump");
  });

  it("reads only proof rows of the documented shape", () => {
    assert.ok(proofOf({ ...FAILED, action: "verification-passed" }));
    assert.equal(proofOf({ ...FAILED, action: "flagged" }), undefined);
    // The old challenge's rows and malformed ones keep the one-line detail.
    assert.equal(
      proofOf({ action: "verification-failed", detail: { reason: "wrong digest" } }),
      undefined,
    );
    const bad = { ...FAILED.detail, devices: [{ device: "cpu:0", verdict: "great" }] };
    assert.equal(proofOf({ action: "verification-passed", detail: bad }), undefined);
  });
});
