import assert from "node:assert/strict";
import { generateKeyPairSync, sign, verify, createPublicKey } from "node:crypto";
import { test } from "node:test";
import { publicKeyOf } from "./device-signing.ts";
import { publicKeyDefect, verifyStrict } from "./ed25519-keys.ts";

const b64 = (hex: string) => Buffer.from(hex, "hex").toString("base64url");

/**
 * The eight points of small order, canonically encoded (identity, the point of order 2, two of
 * order 4, four of order 8), and non-canonical encodings (y ≥ p, or x = 0 with the sign bit set),
 * as listed by "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko, 2020).
 */
const SMALL_ORDER = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];
const NON_CANONICAL = [
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1
  "0100000000000000000000000000000000000000000000000000000000000080", // x = 0, sign bit set
];

/** R = the identity, S = 0: "verifies" against the identity key for any message. */
const TRIVIAL_SIGNATURE = b64("01" + "00".repeat(63));

test("every small-order and non-canonical public key is refused, with the reason", () => {
  for (const hex of SMALL_ORDER) {
    const defect = publicKeyDefect(b64(hex));
    assert.ok(defect !== undefined, hex);
    assert.ok(/small-order|canonical/.test(defect), `${hex}: ${defect}`);
  }
  for (const hex of NON_CANONICAL) {
    assert.match(publicKeyDefect(b64(hex)) ?? "accepted", /canonical|small-order/, hex);
  }
});

test("a key spelled with trailing bits set is refused: one key has one text", () => {
  const key = publicKeyOf(generateKeyPairSync("ed25519").privateKey);
  assert.equal(publicKeyDefect(key), undefined);
  const last = key.at(-1)!;
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  // 43 characters carry 258 bits for 256: the last character's two low bits are padding.
  const sameBytes = key.slice(0, -1) + alphabet[alphabet.indexOf(last) | 1]!;
  assert.deepEqual(Buffer.from(sameBytes, "base64url"), Buffer.from(key, "base64url"));
  assert.match(publicKeyDefect(sameBytes) ?? "accepted", /canonical base64url/);
});

test("the identity key with a trivial signature: node:crypto accepts it, verifyStrict does not", () => {
  const identity = b64(SMALL_ORDER[0]!);
  const message = Buffer.from("tandem/connect/v1\ndev_x\nnonce");
  const lenient = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: identity },
    format: "jwk",
  });
  // The finding: OpenSSL checks the equation, not the key, so this forgery passes there.
  assert.equal(verify(null, message, lenient, Buffer.from(TRIVIAL_SIGNATURE, "base64url")), true);
  assert.equal(verifyStrict(identity, message, TRIVIAL_SIGNATURE), false);
});

test("real keys verify; another message, a flipped bit or S ≥ L do not", () => {
  const { privateKey } = generateKeyPairSync("ed25519");
  const key = publicKeyOf(privateKey);
  const message = Buffer.from("hello");
  const signature = sign(null, message, privateKey);
  assert.equal(verifyStrict(key, message, signature.toString("base64url")), true);
  assert.equal(verifyStrict(key, Buffer.from("hellp"), signature.toString("base64url")), false);
  const flipped = Buffer.from(signature);
  flipped[10]! ^= 1;
  assert.equal(verifyStrict(key, message, flipped.toString("base64url")), false);
  // S + L is the same scalar mod L: a malleated copy that lenient verifiers may accept.
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  const s = BigInt("0x" + Buffer.from(signature.subarray(32)).reverse().toString("hex")) + L;
  const malleated = Buffer.concat([
    signature.subarray(0, 32),
    Buffer.from(s.toString(16).padStart(64, "0"), "hex").reverse(),
  ]);
  assert.equal(verifyStrict(key, message, malleated.toString("base64url")), false);
  assert.equal(verifyStrict(key, message, "not base64"), false);
});
