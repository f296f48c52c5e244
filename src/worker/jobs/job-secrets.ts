import { openSecret } from "../../protocol/sealed-secrets.ts";
import type { JobStartMessage } from "../../protocol/worker-messages.ts";

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
