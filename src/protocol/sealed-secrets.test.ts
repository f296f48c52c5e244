import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { publicKeyOf, seedOf } from "./device-signing.ts";
import { MAX_SECRET_BYTES, SealedBox } from "./cluster-secrets.ts";
import { SecretOpenError, openSecret, sealSecret } from "./sealed-secrets.ts";

function device() {
  const { privateKey } = generateKeyPairSync("ed25519");
  return { publicKey: publicKeyOf(privateKey), seed: seedOf(privateKey) };
}

const binding = { clusterId: "clu_a", nodeId: "node_a", name: "API_TOKEN" };

test("a sealed secret opens on its device, for its binding, to the same text", () => {
  const worker = device();
  for (const value of ["hunter2", "", "ünïcode ✓ 𝄞", "x".repeat(MAX_SECRET_BYTES)]) {
    const box = sealSecret(worker.publicKey, binding, value);
    assert.ok(SealedBox.safeParse(box).success, "a box fits the wire schema");
    assert.equal(openSecret(worker.seed, binding, box), value);
  }
  // Each box has its own ephemeral key and nonce: sealing twice never gives the same box.
  assert.notEqual(
    sealSecret(worker.publicKey, binding, "same"),
    sealSecret(worker.publicKey, binding, "same"),
  );
});

test("another device's key does not open a box", () => {
  const target = device();
  const other = device();
  const box = sealSecret(target.publicKey, binding, "only for target");
  assert.throws(() => openSecret(other.seed, binding, box), SecretOpenError);
});

test("a tampered box does not open, wherever the change is", () => {
  const worker = device();
  const box = Buffer.from(sealSecret(worker.publicKey, binding, "value"), "base64url");
  for (const at of [0, 1, 40, box.length - 20, box.length - 1]) {
    const changed = Buffer.from(box);
    changed[at] = changed[at]! ^ 0x01;
    assert.throws(
      () => openSecret(worker.seed, binding, changed.toString("base64url")),
      SecretOpenError,
      `byte ${at}`,
    );
  }
  assert.throws(
    () => openSecret(worker.seed, binding, box.subarray(0, 40).toString("base64url")),
    SecretOpenError,
  );
});

test("a box replayed into another cluster, to another node or under another name does not open", () => {
  const worker = device();
  const box = sealSecret(worker.publicKey, binding, "bound");
  for (const swapped of [
    { ...binding, clusterId: "clu_b" },
    { ...binding, nodeId: "node_b" },
    { ...binding, name: "OTHER" },
    // Length-prefixed: moving characters between fields is another binding too.
    { clusterId: "clu_an", nodeId: "ode_a", name: "API_TOKEN" },
  ])
    assert.throws(() => openSecret(worker.seed, swapped, box), SecretOpenError);
});

test("sealing refuses a value over the bound and a key that is not a curve point", () => {
  const worker = device();
  assert.throws(
    () => sealSecret(worker.publicKey, binding, "x".repeat(MAX_SECRET_BYTES + 1)),
    RangeError,
  );
  // The identity point (a small-order key) gives no shared secret.
  const identity = Buffer.alloc(32);
  identity[0] = 1;
  assert.throws(() => sealSecret(identity.toString("base64url"), binding, "v"));
});
