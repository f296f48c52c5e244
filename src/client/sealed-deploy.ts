import type { DeployRequest } from "../protocol/clusters.ts";
import { sealSecret } from "../protocol/sealed-secrets.ts";
import { TandemApiError, type TandemClient } from "./client.ts";

/**
 * Deploys with secrets sealed on this machine (src/protocol/sealed-secrets.ts): the deploy names
 * them and reserves the nodes, each value is sealed here to each reserved node's device key, and
 * the boxes go back; the coordinator never sees a value. A refused `PUT` terminates the cluster
 * (refunded) rather than leave it holding nodes until its reservations lapse. A replayed deploy
 * whose secrets are sealed already is answered as it is. (Apart from the client class, so the
 * explorer's bundle carries no sealing code.)
 */
export async function deployWithSecrets(
  client: TandemClient,
  body: DeployRequest,
  secrets: Readonly<Record<string, string>>,
  idempotencyKey?: string,
) {
  const names = Object.keys(secrets);
  const deployed = await client.deployCluster({ ...body, secretNames: names }, idempotencyKey);
  const pending = await client.clusterSecrets(deployed.id);
  if (pending.status === "sealed") return deployed;
  const boxes = pending.recipients.flatMap(({ nodeId, publicKey }) =>
    names.map((name) => ({
      nodeId,
      name,
      box: sealSecret(publicKey, { clusterId: deployed.id, nodeId, name }, secrets[name]!),
    })),
  );
  try {
    await client.putClusterSecrets(deployed.id, { boxes });
  } catch (error) {
    if (error instanceof TandemApiError && error.status < 500)
      await client.terminateCluster(deployed.id).catch(() => undefined);
    throw error;
  }
  return client.getCluster(deployed.id);
}
