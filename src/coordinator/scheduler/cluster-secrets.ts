/**
 * Sealed secrets on the coordinator's side: it holds ciphertext only, and its whole job is to
 * make sure every node of the cluster gets exactly its own boxes.
 *
 * Flow (README "Secrets"):
 * 1. `POST /v1/clusters` with `secretNames` charges escrow and reserves the nodes as any deploy
 *    does, but starts no rank: the cluster is `provisioning` with its secrets `pending`.
 * 2. The client reads `GET /v1/clusters/:id/secrets`: every node of the cluster (ranks and
 *    standbys) with its device public key, and the deadline (the ranks' reservation TTL).
 * 3. It seals each value to each node on the consumer's machine and `PUT`s the boxes. They must
 *    cover every node × name exactly; the reservations get a fresh TTL and the head starts, its
 *    boxes in its `job-start`; every later start of a rank carries that node's boxes.
 * 4. A cluster whose boxes do not come in time fails when its reservations lapse ("secrets not
 *    sent"), refunded like any cluster that never ran; no node is blamed.
 * Failover: standbys got their boxes at step 3, so a rank moves to a standby as usual. A fresh
 * node has no boxes (the consumer sealed to other keys): the coordinator asks a surviving worker
 * of the cluster (one that runs or stands by, so it holds its boxes) over the authenticated worker
 * channel to open its own boxes and seal them again to the fresh node's key (`secrets-reseal`);
 * the answer (`secrets-resealed`) is stored and the rank starts. Until then no start goes to that
 * node; a reseal that never comes lets its reservation lapse, and the rank moves on again. With
 * no survivor (a one-node cluster) the cluster fails, saying so. Not built: the rank waiting for
 * the consumer to seal again.
 */
import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { ClusterSecretsView, PutSecretsRequest } from "../../protocol/cluster-secrets.ts";
import type {
  SecretsResealMessage,
  SecretsResealedMessage,
} from "../../protocol/worker-messages.ts";
import type { Database } from "../store/schema.ts";
import { appendClusterEvent, type LoadedCluster, type LoadedLease } from "./cluster-store.ts";
import type { Tx } from "../store/transaction.ts";
import type { ReadDb } from "../store/transaction.ts";

/** The secret names a cluster was deployed with (empty: none, the usual case). */
export function secretNamesOf(cluster: Pick<LoadedCluster, "spec">): readonly string[] {
  return cluster.spec.secretNames ?? [];
}

/** Whether the cluster waits for its boxes (deployed with secret names, none stored yet). */
export async function secretsPending(db: ReadDb, cluster: LoadedCluster) {
  if (secretNamesOf(cluster).length === 0) return false;
  const any = await db
    .selectFrom("cluster_secrets")
    .select("node_id")
    .where("cluster_id", "=", cluster.id)
    .limit(1)
    .executeTakeFirst();
  return any === undefined;
}

/**
 * The boxes sealed to `nodeId`, for its `job-start`; undefined for a cluster without secrets (no
 * query). A node the consumer sealed nothing to gets an empty record.
 */
export async function sealedBoxesFor(
  db: Kysely<Database>,
  cluster: Pick<LoadedCluster, "id" | "spec">,
  nodeId: string,
): Promise<Record<string, string> | undefined> {
  if (secretNamesOf(cluster).length === 0) return undefined;
  const rows = await db
    .selectFrom("cluster_secrets")
    .select(["name", "box"])
    .where("cluster_id", "=", cluster.id)
    .where("node_id", "=", nodeId)
    .execute();
  return Object.fromEntries(rows.map((r) => [r.name, r.box]));
}

/**
 * What a `job-start` to `nodeId` carries: `ready` with its boxes (none for a cluster without
 * secrets), or not ready when the node lacks a box (a fresh node waiting for its reseal).
 */
export async function startBoxes(
  db: Kysely<Database>,
  cluster: Pick<LoadedCluster, "id" | "spec">,
  nodeId: string,
): Promise<{ ready: true; boxes: Record<string, string> | undefined } | { ready: false }> {
  const boxes = await sealedBoxesFor(db, cluster, nodeId);
  if (boxes !== undefined && !secretNamesOf(cluster).every((name) => name in boxes))
    return { ready: false };
  return { ready: true, boxes };
}

/**
 * A worker of the cluster that holds its boxes and may reseal them: one that runs its rank or
 * stands by (a lease still `reserved` may itself be waiting for a reseal), not among `excluded`.
 */
export function resealerOf(
  cluster: LoadedCluster,
  excluded: readonly string[],
): LoadedLease | undefined {
  return cluster.nodes.find(
    (n) =>
      n.active && !excluded.includes(n.nodeId) && (n.status === "running" || n.status === "staged"),
  );
}

/** The `secrets-reseal` that asks `resealer` to seal its boxes to `toNodeId`'s device key. */
export async function resealRequest(
  db: Kysely<Database>,
  cluster: LoadedCluster,
  resealer: LoadedLease,
  toNodeId: string,
): Promise<{ nodeId: string; message: SecretsResealMessage } | undefined> {
  const boxes = await sealedBoxesFor(db, cluster, resealer.nodeId);
  const key = await devicePublicKeyOf(db, toNodeId);
  if (boxes === undefined || key === undefined) return undefined;
  return {
    nodeId: resealer.nodeId,
    message: {
      type: "secrets-reseal",
      clusterId: cluster.id,
      toNodeId,
      publicKey: key,
      secrets: boxes,
    },
  };
}

/**
 * Stores a reseal's boxes when it answers a real need: `fromNodeId` is an active node of the
 * cluster holding its boxes, `toNodeId` an active node holding none, the names exactly the
 * cluster's. Answers whether it stored them (anything else is ignored: a stale or forged answer).
 */
export async function storeResealed(
  tx: Tx,
  cluster: LoadedCluster,
  fromNodeId: string,
  message: SecretsResealedMessage,
  nowMs: number,
): Promise<boolean> {
  const names = secretNamesOf(cluster);
  const given = Object.keys(message.secrets);
  const active = (nodeId: string) => cluster.nodes.some((n) => n.active && n.nodeId === nodeId);
  const from = await sealedBoxesFor(tx, cluster, fromNodeId);
  const to = await sealedBoxesFor(tx, cluster, message.toNodeId);
  if (
    names.length === 0 ||
    !active(fromNodeId) ||
    !active(message.toNodeId) ||
    from === undefined ||
    Object.keys(from).length !== names.length ||
    to === undefined ||
    Object.keys(to).length > 0 ||
    given.length !== names.length ||
    !names.every((name) => given.includes(name))
  )
    return false;
  await tx
    .insertInto("cluster_secrets")
    .values(
      Object.entries(message.secrets).map(([name, box]) => ({
        cluster_id: cluster.id,
        node_id: message.toNodeId,
        name,
        box,
        created_at: nowMs,
      })),
    )
    .execute();
  await appendClusterEvent(tx, cluster.id, nowMs, "secrets-resealed", {
    fromNodeId,
    toNodeId: message.toNodeId,
  });
  return true;
}

/** The device public key (base64url raw) of `nodeId`'s device: what its boxes are sealed to. */
export async function devicePublicKeyOf(
  db: Kysely<Database>,
  nodeId: string,
): Promise<string | undefined> {
  const row = await db
    .selectFrom("nodes")
    .innerJoin("devices", "devices.id", "nodes.device_id")
    .select("devices.public_key as publicKey")
    .where("nodes.id", "=", nodeId)
    .executeTakeFirst();
  return row?.publicKey;
}

/** What the client seals to: the cluster's active nodes with their device keys. */
export async function secretsView(db: ReadDb, cluster: LoadedCluster): Promise<ClusterSecretsView> {
  const names = secretNamesOf(cluster);
  if (names.length === 0)
    throw new TandemError(
      ErrorCode.NOT_FOUND,
      `cluster ${cluster.id} was deployed without secrets`,
    );
  const active = cluster.nodes.filter((n) => n.active);
  const keys =
    active.length === 0
      ? []
      : await db
          .selectFrom("nodes")
          .innerJoin("devices", "devices.id", "nodes.device_id")
          .select(["nodes.id as nodeId", "devices.public_key as publicKey"])
          .where(
            "nodes.id",
            "in",
            active.map((n) => n.nodeId),
          )
          .execute();
  const keyOf = new Map(keys.map((k) => [k.nodeId, k.publicKey]));
  const pending = await secretsPending(db, cluster);
  const deadlines = active.flatMap((n) => (n.reservedUntilMs === null ? [] : [n.reservedUntilMs]));
  return {
    clusterId: cluster.id,
    names: [...names],
    status: pending ? "pending" : "sealed",
    recipients: active.map((n) => ({
      nodeId: n.nodeId,
      role: n.role,
      publicKey: keyOf.get(n.nodeId)!,
    })),
    sealBy: pending && deadlines.length > 0 ? new Date(Math.min(...deadlines)).toISOString() : null,
  };
}

/**
 * Stores a pending cluster's boxes (in the caller's transaction) after checking they cover every
 * active node × every name exactly once; refuses anything else and changes nothing then.
 */
export async function storeSecrets(
  tx: Tx,
  cluster: LoadedCluster,
  boxes: PutSecretsRequest["boxes"],
  nowMs: number,
): Promise<void> {
  const names = secretNamesOf(cluster);
  if (names.length === 0)
    throw new TandemError(
      ErrorCode.INVALID_TRANSITION,
      `cluster ${cluster.id} was deployed without secrets`,
    );
  if (cluster.status !== "provisioning" || !(await secretsPending(tx, cluster)))
    throw new TandemError(
      ErrorCode.INVALID_TRANSITION,
      `cluster ${cluster.id} is not waiting for secrets (${cluster.status})`,
      { details: { status: cluster.status } },
    );
  const wanted = new Set(
    cluster.nodes
      .filter((n) => n.active)
      .flatMap((n) => names.map((name) => `${n.nodeId}/${name}`)),
  );
  const given = boxes.map((b) => `${b.nodeId}/${b.name}`);
  const duplicate = given.filter((key, i) => given.indexOf(key) !== i);
  const unexpected = given.filter((key) => !wanted.has(key));
  const missing = [...wanted].filter((key) => !given.includes(key));
  if (duplicate.length + unexpected.length + missing.length > 0)
    throw new TandemError(
      ErrorCode.VALIDATION_FAILED,
      "secrets must be one box per node of the cluster and per declared name",
      { details: { missing, unexpected, duplicate } },
    );
  await tx
    .insertInto("cluster_secrets")
    .values(
      boxes.map((b) => ({
        cluster_id: cluster.id,
        node_id: b.nodeId,
        name: b.name,
        box: b.box,
        created_at: nowMs,
      })),
    )
    .execute();
}
