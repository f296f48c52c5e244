// Per-cluster engine TLS (issue 14 item 3) on a manual clock with simulated workers over real
// WebSockets: every start of a Dask cluster carries the cluster's one CA and leaf, the leaf's key
// sealed to the receiving node only; a failover's replacement gets the same; the material is gone
// when the cluster ends.
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { it } from "node:test";
import { makeClusterTls, TLS_MARGIN_MS } from "../src/coordinator/scheduler/cluster-tls.ts";
import { CLUSTER_TLS_KEY_NAME } from "../src/protocol/cluster-tls.ts";
import { seedOf } from "../src/protocol/device-signing.ts";
import { openSecret, SecretOpenError } from "../src/protocol/sealed-secrets.ts";
import { jobTlsFiles } from "../src/worker/jobs/job-tls.ts";
import { dumpDatabase, forEachDatabase } from "./support/coordinator.ts";
import {
  MINUTE,
  simulatedNetwork,
  type JobStart,
  type Worker,
} from "./support/simulated-network.ts";

const HOUR = 60 * MINUTE;

function tlsOf(start: JobStart) {
  assert.ok(start.tls !== undefined, `rank ${start.rank}'s start carries TLS`);
  return start.tls;
}

function openKey(worker: Worker, start: JobStart, nodeId = worker.nodeId): string {
  return openSecret(
    seedOf(worker.device.privateKey),
    { clusterId: start.clusterId, nodeId, name: CLUSTER_TLS_KEY_NAME },
    tlsOf(start).key,
  );
}

forEachDatabase("cluster TLS", (db) => {
  it("gives every start of a Dask cluster its one CA and leaf, the key sealed to that node only; a failover gets the same; gone at the end", async (t) => {
    const s = await simulatedNetwork(db, t, 4);
    const frames: string[] = [];
    for (const w of s.pool)
      w.socket.on("message", (data: Buffer) => frames.push(data.toString("utf8")));
    const issuedAt = s.clock.now();
    const deployed = await s.client.deployCluster({
      kind: "dask",
      nodes: 2,
      shadow: 1,
      hours: 3,
      gpuModel: "cpu",
      command: ["/usr/bin/python3", "-c", "print(1)"],
    });
    const head = s.roleOf(deployed, 0);
    const headStart = await s.nextStart(head);
    const { caCert, cert } = tlsOf(headStart);
    const ca = new X509Certificate(caCert);
    const leaf = new X509Certificate(cert);
    assert.ok(ca.ca && !leaf.ca);
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), "the leaf is the CA's");
    assert.equal(leaf.subject, `CN=${deployed.id.replaceAll("_", "-")}.tandem.internal`);
    const second = (ms: number) => Math.floor(ms / 1000) * 1000;
    assert.equal(
      Date.parse(leaf.validTo),
      second(issuedAt + 3 * HOUR + TLS_MARGIN_MS),
      "valid for the cluster's hours and a margin",
    );
    assert.ok(Date.parse(leaf.validFrom) < issuedAt);
    const keyPem = openKey(head, headStart);
    assert.deepEqual(
      createPublicKey(createPrivateKey(keyPem)).export({ format: "jwk" }),
      leaf.publicKey.export({ format: "jwk" }),
      "the key is the leaf's",
    );

    // Another node's device key opens nothing, nor does the head's box for another node.
    const stranger = s.pool.find((w) => !deployed.nodes.some((n) => n.nodeId === w.nodeId))!;
    assert.throws(() => openKey(stranger, headStart, head.nodeId), SecretOpenError);
    assert.throws(() => openKey(stranger, headStart), SecretOpenError);
    assert.throws(
      () =>
        jobTlsFiles(headStart, {
          seed: seedOf(stranger.device.privateKey),
          nodeId: stranger.nodeId,
        }),
      /the cluster's TLS key does not open on this device/,
    );
    const files = jobTlsFiles(headStart, {
      seed: seedOf(head.device.privateKey),
      nodeId: head.nodeId,
    });
    assert.deepEqual(
      files?.map((f) => [f.path, f.mode, f.content === keyPem]),
      [
        [".tandem/tls/ca.pem", 0o644, false],
        [".tandem/tls/cert.pem", 0o644, false],
        [".tandem/tls/key.pem", 0o600, true],
      ],
    );

    head.send({ type: "job-accepted", clusterId: deployed.id, rank: 0, attempt: 0, port: 29_500 });
    const rank1 = s.roleOf(deployed, 1);
    const rank1Start = await s.nextStart(rank1);
    assert.equal(tlsOf(rank1Start).caCert, caCert);
    assert.equal(tlsOf(rank1Start).cert, cert);
    assert.equal(openKey(rank1, rank1Start), keyPem);
    assert.throws(() => openKey(rank1, headStart), SecretOpenError, "the head's box is the head's");
    rank1.send({ type: "job-accepted", clusterId: deployed.id, rank: 1, attempt: 0, port: null });
    await s.until(deployed.id, (v) => v.status === "running", "ran");

    // The standby takes rank 1 over with the same material (the cluster's processes trust one CA).
    s.clock.advance(MINUTE);
    await s.silence(rank1);
    const standby = s.roleOf(deployed, null);
    const takeover = await s.nextStart(standby);
    assert.equal(takeover.rank, 1);
    assert.equal(tlsOf(takeover).caCert, caCert);
    assert.equal(tlsOf(takeover).cert, cert);
    assert.equal(openKey(standby, takeover), keyPem);

    const keyBody = keyPem.split("\n").slice(1, -2).join("");
    assert.ok(!frames.join("\n").includes(keyBody), "the key never travels in clear");
    const stored = JSON.stringify(await dumpDatabase(s.net.coordinator.store));
    assert.ok(stored.includes(keyBody.slice(0, 40)), "stored for the cluster's life");

    await s.client.terminateCluster(deployed.id);
    const after = JSON.stringify(await dumpDatabase(s.net.coordinator.store));
    assert.ok(!after.includes(keyBody.slice(0, 40)) && !after.includes(deployed.id + '","ca_cert'));
  });

  it("gives torch and batch clusters no TLS, and each cluster its own CA", async (t) => {
    const s = await simulatedNetwork(db, t, 3);
    const deploy = async (kind: "torch" | "batch" | "dask") => {
      const view = await s.client.deployCluster({
        kind,
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        command: ["true"],
      });
      return s.nextStart(s.roleOf(view, 0));
    };
    assert.equal((await deploy("torch")).tls, undefined);
    assert.equal((await deploy("batch")).tls, undefined);
    const dask = await deploy("dask");
    const other = await makeClusterTls("clu_other", { notBeforeMs: 0, notAfterMs: HOUR });
    assert.ok(
      !new X509Certificate(tlsOf(dask).cert).checkIssued(new X509Certificate(other.caCert)),
    );
  });
});
