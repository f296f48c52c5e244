import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";
import { PublicKey } from "./devices.ts";

/**
 * The REST side of sealed secrets (`GET`/`PUT /v1/clusters/:id/secrets`). A deploy that names
 * `secretNames` reserves its nodes and starts nothing; the consumer's client reads each reserved
 * node's device key here, seals every secret to every node on its own machine, and puts the boxes
 * back; the ranks start then. The coordinator never sees a value.
 */

/** Most bytes of one secret's value (the same bound as one environment value of a job). */
export const MAX_SECRET_BYTES = 4096;
/** A sealed box's bytes beside its value: version, ephemeral key, nonce, tag (sealed-secrets.ts). */
export const SEALED_BOX_OVERHEAD_BYTES = 1 + 32 + 24 + 16;

/** A secret's name: it becomes an environment variable of the job (the rule `--env` follows). */
export const SecretName = z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, "expected NAME like API_KEY");

/**
 * One sealed box, base64url, bounded by the largest value it may carry. The schemas live here,
 * apart from the sealing code, so that what only validates (the explorer) carries no cipher.
 */
export const SealedBox = z
  .string()
  .regex(/^[A-Za-z0-9_-]+$/, "expected a base64url sealed box")
  .min(Math.ceil((SEALED_BOX_OVERHEAD_BYTES * 4) / 3))
  .max(Math.ceil(((SEALED_BOX_OVERHEAD_BYTES + MAX_SECRET_BYTES) * 4) / 3));

/** The names a deploy declares; their values never reach the coordinator (see SealedSecrets). */
export const SecretNames = z
  .array(SecretName)
  .min(1)
  .max(16)
  .refine((names) => new Set(names).size === names.length, "secret names must differ");

/** One node a cluster's secrets must be sealed to, with the key to seal them to. */
export const SecretRecipient = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  role: z.enum(["head", "worker", "standby"]),
  /** The node's device Ed25519 public key (base64url raw); boxes are sealed to its X25519 form. */
  publicKey: PublicKey,
});

export const ClusterSecretsView = z.strictObject({
  clusterId: idSchema(IdPrefix.cluster),
  names: z.array(SecretName),
  /** `pending`: reserved, waiting for the boxes (ranks start once they arrive); `sealed`: stored. */
  status: z.enum(["pending", "sealed"]),
  /** Every node of the cluster now (ranks and standbys): one box per node and name. */
  recipients: z.array(SecretRecipient),
  /** Until when a pending cluster waits for its boxes; after that it fails and is refunded. */
  sealBy: z.iso.datetime().nullable(),
});
export type ClusterSecretsView = z.infer<typeof ClusterSecretsView>;

/** Every recipient × every name, each box sealed to that node for exactly that binding. */
export const PutSecretsRequest = z.strictObject({
  boxes: z
    .array(z.strictObject({ nodeId: idSchema(IdPrefix.node), name: SecretName, box: SealedBox }))
    .min(1)
    .max(1024),
});
export type PutSecretsRequest = z.infer<typeof PutSecretsRequest>;
