import { z } from "zod";
import { SealedBox } from "./cluster-secrets.ts";

/**
 * A cluster engine's own lock (issue 14 item 3): Dask (and Ray) speak TLS with mutual
 * authentication, so a process that reaches the head's port without the cluster's certificate
 * cannot talk to it. The coordinator makes, per cluster, a CA and one leaf certificate + key
 * (ECDSA P-256, valid for the lease plus a margin) and sends them in each `job-start` of the
 * cluster, the key sealed to the node's device key (sealed-secrets.ts) under the binding
 * `{ clusterId, nodeId, name: CLUSTER_TLS_KEY_NAME }`. torch has no TLS of its own: the cluster's
 * overlay network (cluster-network.ts) is what encrypts and fences its traffic.
 */

/**
 * The binding name the TLS key is sealed under. Consumer secret names are upper-case identifiers
 * (SecretName), so no consumer box can be replayed as this one, nor this one as theirs.
 */
export const CLUSTER_TLS_KEY_NAME = "tandem/cluster-tls-key";

/** One PEM certificate (an ECDSA P-256 one is about 700 bytes). */
export const CertificatePem = z
  .string()
  .max(8192)
  .regex(
    /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/,
    "expected one PEM certificate",
  );

/** The TLS material of a `job-start` (kinds dask and ray). */
export const JobStartTls = z.strictObject({
  /** The cluster's CA: the only issuer its engine's processes trust. */
  caCert: CertificatePem,
  /** The leaf every process of the cluster presents, as server and as client. */
  cert: CertificatePem,
  /** The leaf's PKCS#8 PEM key, sealed to this node's device key. */
  key: SealedBox,
});
export type JobStartTls = z.infer<typeof JobStartTls>;
