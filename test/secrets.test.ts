// Sealed secrets end to end (issue 18 item 6) on a manual clock with simulated workers over real
// WebSockets: the consumer's client seals each value to each chosen node's device key, the
// coordinator stores and forwards boxes only, each worker opens its own and no other.
import assert from "node:assert/strict";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { TandemApiError } from "../src/client/client.ts";
import { ClusterSecretsView } from "../src/protocol/cluster-secrets.ts";
import { deployWithSecrets } from "../src/client/sealed-deploy.ts";
import { resealSecrets } from "../src/worker/jobs/job-secrets.ts";
import { seedOf } from "../src/protocol/device-signing.ts";
import { SecretOpenError, openSecret, sealSecret } from "../src/protocol/sealed-secrets.ts";
import { assertError, dumpDatabase, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import {
  MINUTE,
  simulatedNetwork,
  type JobStart,
  type SimulatedNetwork,
  type Worker,
} from "./support/simulated-network.ts";
import { spawnTandem } from "./support/processes.ts";

const SECRET = "s3cr3t-Pa55word/for-the-job+never-the-coordinator";
const OTHER = "second-value-ünïcode";

const deployRequest = {
  kind: "batch" as const,
  nodes: 2,
  shadow: 1,
  hours: 1,
  gpuModel: "cpu",
  command: ["sh", "-c", 'printf %s "$API_TOKEN" | sha256sum'],
  env: { PLAIN: "not-secret" },
};

/** Every text frame the coordinator sends to `worker` from now on. */
function recordFrames(worker: Worker): string[] {
  const frames: string[] = [];
  worker.socket.on("message", (data: Buffer) => frames.push(data.toString("utf8")));
  return frames;
}

function open(worker: Worker, start: JobStart, name: string): string {
  const box = start.secrets?.[name];
  assert.ok(box !== undefined, `a ${name} box for ${worker.nodeId}`);
  return openSecret(
    seedOf(worker.device.privateKey),
    { clusterId: start.clusterId, nodeId: worker.nodeId, name },
    box,
  );
}

/** Plaintext in any form a careless path would leave it: as is, base64, hex. */
function leaks(text: string): string[] {
  return [SECRET, OTHER].flatMap((value) =>
    [
      value,
      Buffer.from(value).toString("base64"),
      Buffer.from(value).toString("base64url"),
      Buffer.from(value).toString("hex"),
    ].filter((form) => text.includes(form)),
  );
}

async function sqliteFiles(s: SimulatedNetwork): Promise<string> {
  const names = (await readdir(s.net.home)).filter((n) => n.startsWith("coordinator.db"));
  assert.ok(names.includes("coordinator.db"));
  const bytes = await Promise.all(names.map((n) => readFile(join(s.net.home, n))));
  return Buffer.concat(bytes).toString("latin1");
}

forEachDatabase("sealed secrets", (db) => {
  it("reach each rank sealed to its own node: no plaintext in the database or on the worker channel", async (t) => {
    const s = await simulatedNetwork(db, t, 3);
    const frames = s.pool.map(recordFrames);
    const deployed = await deployWithSecrets(s.client, deployRequest, {
      API_TOKEN: SECRET,
      SECOND: OTHER,
    });
    assert.equal(deployed.status, "provisioning");
    const view = await s.client.clusterSecrets(deployed.id);
    assert.equal(view.status, "sealed");
    assert.deepEqual(view.names, ["API_TOKEN", "SECOND"]);
    assert.equal(view.recipients.length, 3, "both ranks and the standby");

    // The head's first start carries its boxes (no start went out before they were sealed).
    const head = s.roleOf(deployed, 0);
    const headStart = await s.nextStart(head);
    assert.equal(open(head, headStart, "API_TOKEN"), SECRET);
    assert.equal(open(head, headStart, "SECOND"), OTHER);
    assert.deepEqual(headStart.env, { PLAIN: "not-secret" }, "secrets travel only sealed");
    head.send({ type: "job-accepted", clusterId: deployed.id, rank: 0, attempt: 0, port: 29_500 });
    const rank1 = s.roleOf(deployed, 1);
    const rank1Start = await s.nextStart(rank1);
    assert.equal(open(rank1, rank1Start, "API_TOKEN"), SECRET);
    assert.notEqual(rank1Start.secrets?.API_TOKEN, headStart.secrets?.API_TOKEN);
    rank1.send({ type: "job-accepted", clusterId: deployed.id, rank: 1, attempt: 0, port: null });
    await s.until(deployed.id, (v) => v.status === "running", "ran");

    // Another node's key, or a box moved to another node, opens nothing.
    const stranger = s.pool.find((w) => w !== head && w !== rank1)!;
    assert.throws(
      () =>
        openSecret(
          seedOf(stranger.device.privateKey),
          { clusterId: deployed.id, nodeId: head.nodeId, name: "API_TOKEN" },
          headStart.secrets!.API_TOKEN!,
        ),
      SecretOpenError,
    );
    assert.throws(() => open(rank1, { ...rank1Start, secrets: headStart.secrets! }, "API_TOKEN"));

    const everyFrame = frames.flat().join("\n");
    assert.ok(everyFrame.includes(headStart.secrets!.API_TOKEN!), "the frames were recorded");
    assert.deepEqual(leaks(everyFrame), [], "no plaintext on the worker channel");
    const dump = JSON.stringify(await dumpDatabase(s.net.coordinator.store));
    assert.ok(dump.includes("cluster_secrets") && dump.includes(headStart.secrets!.SECOND!));
    assert.deepEqual(leaks(dump), [], "no plaintext in any table");
    if (db.kind === "sqlite") assert.deepEqual(leaks(await sqliteFiles(s)), [], "nor in its files");
    const events = (await s.client.getCluster(deployed.id)).events.map((e) => e.type);
    assert.ok(events.includes("secrets-pending") && events.includes("secrets-sealed"));
  });

  it("moves a lost rank to its standby with its own boxes, then to a fresh node resealed by a survivor", async (t) => {
    const s = await simulatedNetwork(db, t, 4);
    const deployed = await deployWithSecrets(s.client, deployRequest, { API_TOKEN: SECRET });
    const head = s.roleOf(deployed, 0);
    await s.nextStart(head);
    head.send({ type: "job-accepted", clusterId: deployed.id, rank: 0, attempt: 0, port: 29_500 });
    const victim = s.roleOf(deployed, 1);
    await s.nextStart(victim);
    victim.send({ type: "job-accepted", clusterId: deployed.id, rank: 1, attempt: 0, port: null });
    await s.until(deployed.id, (v) => v.status === "running", "ran");
    const standby = s.roleOf(deployed, null);
    const fresh = s.pool.find((w) => !deployed.nodes.some((n) => n.nodeId === w.nodeId))!;
    const frames = [head, fresh].map(recordFrames);

    s.clock.advance(MINUTE);
    await s.silence(victim);
    const takeover = await s.nextStart(standby);
    assert.equal(takeover.rank, 1);
    assert.equal(open(standby, takeover, "API_TOKEN"), SECRET);
    standby.send({ type: "job-accepted", clusterId: deployed.id, rank: 1, attempt: 1, port: null });
    await s.tookOver(deployed.id);

    // No standby left: the fresh node holds no box, so the head reseals its own to it.
    s.clock.advance(MINUTE);
    await s.silence(standby);
    let request = await head.next();
    while (request.type !== "secrets-reseal") request = await head.next();
    assert.equal(request.toNodeId, fresh.nodeId);
    assert.equal(request.publicKey, fresh.device.publicKey);
    const key = { seed: seedOf(head.device.privateKey), nodeId: head.nodeId };
    const answer = resealSecrets(request, key);
    // Only a worker of the cluster holding its boxes is heard; the fresh node cannot seal itself.
    fresh.send({
      ...answer,
      secrets: {
        API_TOKEN: sealSecret(
          fresh.device.publicKey,
          { clusterId: deployed.id, nodeId: fresh.nodeId, name: "API_TOKEN" },
          "forged",
        ),
      },
    });
    head.send(answer);
    const moved = await s.nextStart(fresh);
    assert.equal(moved.rank, 1);
    assert.equal(
      open(fresh, moved, "API_TOKEN"),
      SECRET,
      "the survivor's value, not the forged one",
    );
    fresh.send({ type: "job-accepted", clusterId: deployed.id, rank: 1, attempt: 2, port: null });
    const view = await s.until(
      deployed.id,
      (v) => v.nodes.some((n) => n.nodeId === fresh.nodeId && n.status === "running"),
      "ran on the fresh node",
    );
    assert.equal(view.status, "running");
    const resealed = view.events.filter((e) => e.type === "secrets-resealed");
    assert.deepEqual(
      resealed.map((e) => e.detail),
      [{ fromNodeId: head.nodeId, toNodeId: fresh.nodeId }],
    );
    assert.deepEqual(leaks(frames.flat().join("\n")), [], "the reseal relays boxes only");
    assert.deepEqual(leaks(JSON.stringify(await dumpDatabase(s.net.coordinator.store))), []);
    // A box not sealed to the asked worker is refused there, never resealed.
    assert.throws(
      () => resealSecrets({ ...request, secrets: moved.secrets! }, key),
      SecretOpenError,
    );
  });

  it("fails a one-node cluster with secrets whose node is lost: nobody can reseal them", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const deployed = await deployWithSecrets(
      s.client,
      { ...deployRequest, nodes: 1, shadow: 0 },
      { API_TOKEN: SECRET },
    );
    const only = s.roleOf(deployed, 0);
    await s.nextStart(only);
    only.send({ type: "job-accepted", clusterId: deployed.id, rank: 0, attempt: 0, port: 29_500 });
    await s.until(deployed.id, (v) => v.status === "running", "ran");
    s.clock.advance(MINUTE);
    await s.silence(only);
    const failed = await s.until(deployed.id, (v) => v.status === "failed", "failed");
    assert.match(
      String(failed.events.find((e) => e.type === "failed")?.detail.reason),
      /no standby, nor a surviving node to reseal its secrets/,
    );
  });

  it("starts nothing until the boxes come, and a cluster that never gets them fails refunded, unblamed", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const deployed = await s.client.deployCluster({
      ...deployRequest,
      shadow: 0,
      secretNames: ["API_TOKEN"],
    });
    const pending = await s.client.clusterSecrets(deployed.id);
    assert.equal(pending.status, "pending");
    assert.equal(pending.sealBy, new Date(s.clock.now() + 10_000).toISOString());
    assert.deepEqual(
      pending.recipients.map((r) => [r.nodeId, r.role]),
      deployed.nodes.map((n) => [n.nodeId, n.role]),
    );
    // A worker reconnecting meanwhile is not started either.
    const head = s.roleOf(deployed, 0);
    const again = await head.reconnect();
    t.after(() => again.socket.terminate());
    s.clock.advance(10_001);
    await s.beat([again, s.roleOf(deployed, 1)]);
    await s.net.coordinator.ticker.tick();
    const failed = await s.until(deployed.id, (v) => v.status === "failed", "failed");
    assert.match(
      String(failed.events.find((e) => e.type === "failed")?.detail.reason),
      /secrets not sent within 10000 ms/,
    );
    assert.ok(!failed.events.some((e) => e.type === "slashed" || e.type === "failover"));
    const costs = await s.costs(deployed.id);
    assert.equal(costs.served, "0.000000");
    assert.equal(costs.refunded, costs.rental, "the whole rental comes back");
    for (const node of deployed.nodes)
      assert.equal((await s.client.getNode(node.nodeId)).status, "available");
    // The sealed-late boxes are refused: the cluster has ended.
    await assert.rejects(
      s.client.putClusterSecrets(deployed.id, {
        boxes: pending.recipients.map((r) => ({
          nodeId: r.nodeId,
          name: "API_TOKEN",
          box: sealSecret(r.publicKey, { ...r, clusterId: deployed.id, name: "API_TOKEN" }, "x"),
        })),
      }),
      (error) => error instanceof TandemApiError && error.code === "INVALID_TRANSITION",
    );
  });

  it("tandem cluster secrets shows a pending cluster's nodes and seals --secret / --secret-file to them", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const deployed = await s.client.deployCluster({
      ...deployRequest,
      shadow: 0,
      secretNames: ["API_TOKEN", "SECOND"],
    });
    const cli = async (...args: string[]) => {
      const run = spawnTandem(["cluster", "secrets", deployed.id, "--json", ...args], {
        TANDEM_URL: s.net.url,
        TANDEM_API_KEY: s.consumer.apiKey,
        TANDEM_HOME: s.net.home,
      });
      assert.equal(await run.exited, 0, run.stderr.join("\n"));
      return ClusterSecretsView.parse(JSON.parse(run.stdout.join("\n")));
    };
    const shown = await cli();
    assert.equal(shown.status, "pending");
    assert.deepEqual(
      shown.recipients.map((r) => r.nodeId).sort(),
      deployed.nodes.map((n) => n.nodeId).sort(),
    );
    const file = join(s.net.home, "second.txt");
    await writeFile(file, OTHER);
    const sealed = await cli("--secret", `API_TOKEN=${SECRET}`, "--secret-file", `SECOND=${file}`);
    assert.equal(sealed.status, "sealed");
    const head = s.roleOf(deployed, 0);
    const start = await s.nextStart(head);
    assert.equal(open(head, start, "API_TOKEN"), SECRET);
    assert.equal(open(head, start, "SECOND"), OTHER);
  });

  it("refuses boxes that do not cover every node and name exactly, and changes nothing", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const deployed = await s.client.deployCluster({
      ...deployRequest,
      shadow: 0,
      secretNames: ["API_TOKEN", "SECOND"],
    });
    const { recipients } = await s.client.clusterSecrets(deployed.id);
    const box = (nodeId: string, name: string) => ({
      nodeId,
      name,
      box: sealSecret(
        recipients.find((r) => r.nodeId === nodeId)!.publicKey,
        { clusterId: deployed.id, nodeId, name },
        SECRET,
      ),
    });
    const [a, b] = recipients.map((r) => r.nodeId) as [string, string];
    const put = (boxes: unknown[], apiKey = s.consumer.apiKey) =>
      httpRequest(s.net.url, "PUT", `/v1/clusters/${deployed.id}/secrets`, {
        apiKey,
        body: { boxes },
      });
    const missing = await put([box(a, "API_TOKEN"), box(a, "SECOND"), box(b, "API_TOKEN")]);
    assertError(missing, 400, "VALIDATION_FAILED");
    assert.deepEqual((missing.json as { error: { details: unknown } }).error.details, {
      missing: [`${b}/SECOND`],
      unexpected: [],
      duplicate: [],
    });
    const full = [box(a, "API_TOKEN"), box(a, "SECOND"), box(b, "API_TOKEN"), box(b, "SECOND")];
    assertError(await put([...full, box(a, "OTHER")]), 400, "VALIDATION_FAILED");
    assertError(await put([...full, full[0]]), 400, "VALIDATION_FAILED");
    assertError(
      await put([{ ...full[0], box: "not a box!" }, ...full.slice(1)]),
      400,
      "VALIDATION_FAILED",
    );
    assertError(
      await put([{ ...full[0], name: "lower" }, ...full.slice(1)]),
      400,
      "VALIDATION_FAILED",
    );
    const stranger = await s.net.signUp(["consumer"]);
    assertError(await put(full, stranger.apiKey), 404, "NOT_FOUND");
    assertError(
      await httpRequest(s.net.url, "GET", `/v1/clusters/${deployed.id}/secrets`, {
        apiKey: stranger.apiKey,
      }),
      404,
      "NOT_FOUND",
    );
    assert.equal((await s.client.clusterSecrets(deployed.id)).status, "pending", "nothing stored");

    assert.equal((await put(full)).status, 200);
    assertError(await put(full), 409, "INVALID_TRANSITION");
    assert.equal(
      open(s.roleOf(deployed, 0), await s.nextStart(s.roleOf(deployed, 0)), "SECOND"),
      SECRET,
    );
  });

  it("refuses secret names on autoscaled clusters, beside an --env of the same name, and secrets on a cluster without", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const post = (body: unknown) =>
      httpRequest(s.net.url, "POST", "/v1/clusters", { apiKey: s.consumer.apiKey, body });
    const base = { ...deployRequest, nodes: 1, shadow: 0 };
    assertError(
      await post({ ...base, secretNames: ["API_TOKEN"], autoscale: { min: 1, max: 2 } }),
      400,
      "VALIDATION_FAILED",
    );
    assertError(await post({ ...base, secretNames: ["PLAIN"] }), 400, "VALIDATION_FAILED");
    assertError(await post({ ...base, secretNames: ["A", "A"] }), 400, "VALIDATION_FAILED");
    assertError(await post({ ...base, secretNames: ["lower-case"] }), 400, "VALIDATION_FAILED");
    // A value a container cannot take is refused before anything is deployed.
    await assert.rejects(
      deployWithSecrets(
        s.client,
        { ...base, kind: "container", image: "localhost/any:1" },
        { API_TOKEN: "two\nlines" },
      ),
      /cannot hold newlines: secret API_TOKEN/,
    );
    assert.deepEqual((await s.client.listClusters()).items, []);
    const plain = await s.client.deployCluster(base);
    const start = await s.nextStart(s.roleOf(plain, 0));
    assert.equal(start.secrets, undefined, "a deploy without secrets is as before");
    assertError(
      await httpRequest(s.net.url, "GET", `/v1/clusters/${plain.id}/secrets`, {
        apiKey: s.consumer.apiKey,
      }),
      404,
      "NOT_FOUND",
    );
    assertError(
      await httpRequest(s.net.url, "PUT", `/v1/clusters/${plain.id}/secrets`, {
        apiKey: s.consumer.apiKey,
        body: {
          boxes: [
            { nodeId: start.clusterId.replace("clu_", "node_"), name: "A", box: "x".repeat(120) },
          ],
        },
      }),
      409,
      "INVALID_TRANSITION",
    );
  });

  it("fails the cluster without blaming the node when a box does not open on it", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const deployed = await deployWithSecrets(
      s.client,
      { ...deployRequest, nodes: 1, shadow: 0 },
      { API_TOKEN: SECRET },
    );
    const worker = s.roleOf(deployed, 0);
    const start = await s.nextStart(worker);
    worker.send({
      type: "job-exit",
      clusterId: deployed.id,
      rank: 0,
      attempt: start.attempt,
      exitCode: null,
      signal: null,
      error: "secret API_TOKEN does not open on this device",
      secretsRefused: true,
    });
    const failed = await s.until(deployed.id, (v) => v.status === "failed", "failed");
    assert.match(
      String(failed.events.find((e) => e.type === "failed")?.detail.reason),
      /rank 0: secret API_TOKEN does not open/,
    );
    assert.ok(!failed.events.some((e) => e.type === "slashed" || e.type === "failover"));
    const history = await s.client.nodeHistory(worker.nodeId);
    assert.ok(
      JSON.stringify(history).includes("completed") &&
        !JSON.stringify(history).includes('"slashed":"'),
    );
  });
});
