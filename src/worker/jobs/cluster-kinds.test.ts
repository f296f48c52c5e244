import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JobStartMessage } from "../../protocol/worker-messages.ts";
import { planRank, type RankContext } from "./cluster-kinds.ts";
import { tlsPaths } from "./job-tls.ts";

const job = (kind: JobStartMessage["kind"], rank: number): JobStartMessage => ({
  type: "job-start",
  clusterId: "clu_01HZX3V4W5Y6Z7A8B9C0D1E2F3",
  rank,
  attempt: 0,
  worldSize: 3,
  kind,
  command: ["/usr/bin/python3", "client.py"],
  env: {},
  image: null,
  head: rank === 0 ? null : { address: "10.77.0.1", port: 8786 },
});
const ctx: RankContext = {
  head: { address: "10.77.0.1", port: 8786 },
  gpuIndices: [],
  python: "/usr/bin/python3",
};
const tls = tlsPaths("/job");

describe("cluster kinds: engine TLS", () => {
  it("runs Dask's scheduler, workers and client on tls:// with the cluster's files", () => {
    const head = planRank(job("dask", 0), { ...ctx, tls });
    assert.equal(head.env.DASK_SCHEDULER_ADDRESS, "tls://10.77.0.1:8786");
    assert.match(
      head.command[2]!,
      /dask_scheduler --host 0\.0\.0\.0 --port 8786 --protocol tls --tls-ca-file \/job\/\.tandem\/tls\/ca\.pem --tls-cert \/job\/\.tandem\/tls\/cert\.pem --tls-key \/job\/\.tandem\/tls\/key\.pem/,
    );
    const worker = planRank(job("dask", 1), { ...ctx, tls });
    assert.deepEqual(worker.command.slice(3), [
      "tls://10.77.0.1:8786",
      "--nthreads",
      "1",
      "--no-dashboard",
      "--nanny",
      "--tls-ca-file",
      tls.caFile,
      "--tls-cert",
      tls.certFile,
      "--tls-key",
      tls.keyFile,
    ]);
    for (const plan of [head, worker]) {
      assert.equal(plan.env.DASK_DISTRIBUTED__COMM__TLS__CA_FILE, tls.caFile);
      assert.equal(plan.env.DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT, tls.certFile);
      assert.equal(plan.env.DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY, tls.keyFile);
      assert.equal(plan.env.DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION, "True");
    }
  });

  it("gives Ray its TLS variables, and nothing TLS to a start without the files", () => {
    const ray = planRank(job("ray", 1), { ...ctx, tls });
    assert.deepEqual(
      Object.entries(ray.env).filter(([name]) => name.startsWith("RAY_")),
      [
        ["RAY_USE_TLS", "1"],
        ["RAY_TLS_SERVER_CERT", tls.certFile],
        ["RAY_TLS_SERVER_KEY", tls.keyFile],
        ["RAY_TLS_CA_CERT", tls.caFile],
      ],
    );
    const plain = planRank(job("dask", 1), ctx);
    assert.equal(plain.env.DASK_SCHEDULER_ADDRESS, "tcp://10.77.0.1:8786");
    assert.ok(!plain.command.includes("--tls-ca-file"));
    assert.ok(!Object.keys(plain.env).some((name) => name.includes("TLS")));
  });
});
