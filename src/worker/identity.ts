import { createPrivateKey, type KeyObject } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { privateKeyFromPem } from "../protocol/device-signing.ts";

/** Where this worker's identity lives: its Ed25519 key and the ids the coordinator gave it. */
export interface DeviceIdentity {
  privateKey: KeyObject;
  /** Set once registered. */
  deviceId: string | undefined;
  nodeId: string | undefined;
}

const KEY_FILE = "device.key";
const IDS_FILE = "device.json";

/**
 * Loads the device key from `home`, creating it (mode 0600, in a 0700 directory) on first start.
 * The key never leaves the machine: the coordinator only ever sees its public half.
 */
export async function loadOrCreateIdentity(home: string): Promise<DeviceIdentity> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const keyPath = join(home, KEY_FILE);
  let pem: string;
  try {
    pem = await readFile(keyPath, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    pem = newEd25519Pem();
    await writeFile(keyPath, pem, { mode: 0o600, flag: "wx" });
  }
  await chmod(keyPath, 0o600);
  const ids = await readIds(home);
  return { privateKey: privateKeyFromPem(pem), deviceId: ids?.deviceId, nodeId: ids?.nodeId };
}

export async function saveIds(
  home: string,
  ids: { deviceId: string; nodeId: string },
): Promise<void> {
  await writeFile(join(home, IDS_FILE), JSON.stringify(ids, null, 2) + "\n", { mode: 0o600 });
}

async function readIds(home: string): Promise<{ deviceId: string; nodeId: string } | undefined> {
  try {
    return JSON.parse(await readFile(join(home, IDS_FILE), "utf8")) as {
      deviceId: string;
      nodeId: string;
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** PKCS#8 DER of an Ed25519 private key, up to its 32-byte seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * A new Ed25519 private key as PKCS#8 PEM, its seed from @noble/curves: node:crypto's
 * generateKeyPairSync leaves a generation job whose finalizer can deadlock a later export of the
 * same key on Node 20 (network/wireguard-overlay.ts `newKeyPair` says how).
 */
function newEd25519Pem(): string {
  const seed = ed25519.utils.randomSecretKey();
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  return key.export({ format: "pem", type: "pkcs8" }).toString();
}
