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
  // Checked here, where the values are: the coordinator cannot, and a worker refusing it late
  // would cost a placement. podman's --env-file holds one value per line.
  const multiline = Object.keys(secrets).filter((name) => secrets[name]!.includes("\n"));
  if (body.kind === "container" && multiline.length > 0)
    throw new RangeError(
      `a container's environment values cannot hold newlines: secret ${multiline.join(", ")}`,
    );
  const deployed = await client.deployCluster(
    { ...body, secretNames: Object.keys(secrets) },
    idempotencyKey,
  );
  try {
    await sealPendingSecrets(client, deployed.id, secrets);
  } catch (error) {
    if (error instanceof TandemApiError && error.status < 500)
      await client.terminateCluster(deployed.id).catch(() => undefined);
    throw error;
  }
  return client.getCluster(deployed.id);
}

/**
 * Seals `secrets` to every node of a cluster waiting for them (`tandem cluster secrets <id>`
 * after a deploy whose client stopped before it sealed) and puts the boxes; a cluster sealed
 * already is left as it is. Answers the cluster's secrets view.
 */
export async function sealPendingSecrets(
  client: TandemClient,
  clusterId: string,
  secrets: Readonly<Record<string, string>>,
) {
  const pending = await client.clusterSecrets(clusterId);
  if (pending.status === "sealed") return pending;
  const boxes = pending.recipients.flatMap(({ nodeId, publicKey }) =>
    Object.entries(secrets).map(([name, value]) => ({
      nodeId,
      name,
      box: sealSecret(publicKey, { clusterId, nodeId, name }, value),
    })),
  );
  return client.putClusterSecrets(clusterId, { boxes });
}
