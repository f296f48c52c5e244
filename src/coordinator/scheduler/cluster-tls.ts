/**
 * Per-cluster TLS for the engines that offer it (Dask, Ray): issue 14 item 3.
 *
 * At a cluster's first `job-start` the coordinator makes a CA and one leaf (ECDSA P-256, ~20 ms),
 * signs the leaf with the CA and throws the CA's key away: nothing can sign a second leaf, so the
 * cluster's processes trust exactly one certificate. The leaf serves as server and client (Dask's
 * scheduler, workers and client all present it; distributed checks the chain, not host names). It
 * is stored (table `cluster_tls`) so every later start, a failover's replacement included, gets the
 * same material, and the row is deleted when the cluster ends. Each `job-start` carries the CA and
 * the leaf in clear and the leaf's key sealed to the receiving node's device key.
 *
 * Validity: from an hour before issue (clock skew between coordinator and workers) to the
 * cluster's hours plus a day after it. A cluster extended by more than that day past its first
 * start keeps running, but new TLS connections after `notAfter` fail (not handled: no re-issue).
 *
 * The coordinator can read the key (it made it): the lock is against other tenants and anything
 * else that reaches the head's port, not against the coordinator, which controls the ranks anyway.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { randomBytes, webcrypto } from "node:crypto";
import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { overlayAddressOf } from "../../protocol/cluster-network.ts";
import { CLUSTER_TLS_KEY_NAME, type JobStartTls } from "../../protocol/cluster-tls.ts";
import type { ClusterView } from "../../protocol/clusters.ts";
import { sealSecret } from "../../protocol/sealed-secrets.ts";
import { toNumber } from "../store/rows.ts";
import type { Database } from "../store/schema.ts";
import { devicePublicKeyOf } from "./cluster-secrets.ts";
import type { Tx } from "../store/transaction.ts";

/** The cluster kinds whose engine speaks TLS with the cluster's certificate. */
export const TLS_KINDS: ReadonlySet<ClusterView["kind"]> = new Set(["dask", "ray"]);

const HOUR_MS = 3_600_000;
/** How long before issue the certificates are already valid (worker clocks behind ours). */
export const TLS_BACKDATE_MS = HOUR_MS;
/** How long after the cluster's hours the certificates stay valid. */
export const TLS_MARGIN_MS = 24 * HOUR_MS;

/** A cluster's TLS material, PEM. */
export interface ClusterTlsMaterial {
  caCert: string;
  cert: string;
  /** The leaf's key, PKCS#8. */
  key: string;
  notAfterMs: number;
}

const crypto = webcrypto as unknown as Crypto;
const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

/** The host name every leaf names (CN and SAN) for `clusterId`. */
export function clusterTlsName(clusterId: string): string {
  return `${clusterId.replaceAll("_", "-")}.tandem.internal`;
}

/** Makes a fresh CA and leaf for `clusterId`, valid from `notBeforeMs` to `notAfterMs`. */
export async function makeClusterTls(
  clusterId: string,
  validity: { notBeforeMs: number; notAfterMs: number },
): Promise<ClusterTlsMaterial> {
  const notBefore = new Date(validity.notBeforeMs);
  const notAfter = new Date(validity.notAfterMs);
  const caKeys = await crypto.subtle.generateKey(EC, false, ["sign", "verify"]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: `CN=Tandem cluster CA ${clusterId}`,
      notBefore,
      notAfter,
      signingAlgorithm: SIGNING,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const leafKeys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const name = clusterTlsName(clusterId);
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `CN=${name}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingAlgorithm: SIGNING,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        // The head's overlay address and loopback, for engines that check the server's name (Ray).
        new x509.SubjectAlternativeNameExtension([
          { type: "dns", value: name },
          { type: "ip", value: overlayAddressOf(0) },
          { type: "ip", value: "127.0.0.1" },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", leafKeys.privateKey));
  return {
    caCert: ca.toString("pem") + "\n",
    cert: leaf.toString("pem") + "\n",
    key: pem("PRIVATE KEY", pkcs8),
    notAfterMs: validity.notAfterMs,
  };
}

/**
 * The cluster's TLS material, made and stored at its first call (a concurrent first call on
 * another replica loses the insert and reads the winner's). Undefined for kinds without TLS.
 */
export async function clusterTls(
  db: Kysely<Database>,
  cluster: { id: string; kind: ClusterView["kind"]; hours: number },
  nowMs: number,
): Promise<ClusterTlsMaterial | undefined> {
  if (!TLS_KINDS.has(cluster.kind)) return undefined;
  const stored = await storedTls(db, cluster.id);
  if (stored !== undefined) return stored;
  const made = await makeClusterTls(cluster.id, {
    notBeforeMs: nowMs - TLS_BACKDATE_MS,
    notAfterMs: nowMs + cluster.hours * HOUR_MS + TLS_MARGIN_MS,
  });
  await db
    .insertInto("cluster_tls")
    .values({
      cluster_id: cluster.id,
      ca_cert: made.caCert,
      cert: made.cert,
      key: made.key,
      not_after: made.notAfterMs,
      created_at: nowMs,
    })
    .onConflict((oc) => oc.column("cluster_id").doNothing())
    .execute();
  return storedTls(db, cluster.id);
}

/**
 * What a `job-start` of `cluster` to `nodeId` carries: the CA, the leaf, and the leaf's key sealed
 * to the node's device key. Undefined for kinds without TLS.
 */
export async function startTls(
  db: Kysely<Database>,
  cluster: { id: string; kind: ClusterView["kind"]; hours: number },
  nodeId: string,
  nowMs: number,
): Promise<JobStartTls | undefined> {
  const material = await clusterTls(db, cluster, nowMs);
  if (material === undefined) return undefined;
  const publicKey = await devicePublicKeyOf(db, nodeId);
  if (publicKey === undefined)
    throw new TandemError(ErrorCode.INTERNAL, `node ${nodeId} has no device key to seal to`);
  return {
    caCert: material.caCert,
    cert: material.cert,
    key: sealSecret(
      publicKey,
      { clusterId: cluster.id, nodeId, name: CLUSTER_TLS_KEY_NAME },
      material.key,
    ),
  };
}

/** Deletes an ended cluster's TLS material (in the caller's transaction). */
export async function forgetClusterTls(tx: Tx, clusterId: string): Promise<void> {
  await tx.deleteFrom("cluster_tls").where("cluster_id", "=", clusterId).execute();
}

async function storedTls(
  db: Kysely<Database>,
  clusterId: string,
): Promise<ClusterTlsMaterial | undefined> {
  const row = await db
    .selectFrom("cluster_tls")
    .select(["ca_cert", "cert", "key", "not_after"])
    .where("cluster_id", "=", clusterId)
    .executeTakeFirst();
  return row === undefined
    ? undefined
    : { caCert: row.ca_cert, cert: row.cert, key: row.key, notAfterMs: toNumber(row.not_after) };
}

/** A positive 128-bit serial, hex (RFC 5280: at most 20 octets, non-negative). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString("hex");
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
