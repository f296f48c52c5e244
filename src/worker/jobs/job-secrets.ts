import { openSecret, sealSecret } from "../../protocol/sealed-secrets.ts";
import type {
  JobStartMessage,
  SecretsResealMessage,
  SecretsResealedMessage,
} from "../../protocol/worker-messages.ts";

/** What opens secrets sealed to this device: its Ed25519 seed and the node id they are bound to. */
export interface DeviceSecretKey {
  seed: Uint8Array;
  nodeId: string;
}

/**
 * The job's sealed secrets, opened into environment values (in memory only: they reach the job's
 * environment and nothing else on this machine). Throws `SecretOpenError` when a box was not
 * sealed to this device for this cluster, node and name: the consumer's doing, never the node's.
 */
export function openJobSecrets(job: JobStartMessage, key: DeviceSecretKey): Record<string, string> {
  const opened: Record<string, string> = {};
  for (const [name, box] of Object.entries(job.secrets ?? {}))
    opened[name] = openSecret(
      key.seed,
      { clusterId: job.clusterId, nodeId: key.nodeId, name },
      box,
    );
  return opened;
}

/**
 * A failover's reseal (`secrets-reseal`): this worker's own boxes of the cluster, opened here and
 * sealed again to the fresh node's key for its binding. Throws `SecretOpenError` when a box is not
 * this device's (the coordinator's request is then refused, never answered with something else).
 */
export function resealSecrets(
  request: SecretsResealMessage,
  key: DeviceSecretKey,
): SecretsResealedMessage {
  const secrets: Record<string, string> = {};
  for (const [name, box] of Object.entries(request.secrets)) {
    const value = openSecret(
      key.seed,
      { clusterId: request.clusterId, nodeId: key.nodeId, name },
      box,
    );
    secrets[name] = sealSecret(
      request.publicKey,
      { clusterId: request.clusterId, nodeId: request.toNodeId, name },
      value,
    );
  }
  return {
    type: "secrets-resealed",
    clusterId: request.clusterId,
    toNodeId: request.toNodeId,
    secrets,
  };
}
