// Dask's own lock (issue 14 item 3), with real processes: a coordinator and 3 workers, a Dask
// cluster in bubblewrap sandboxes speaking TLS with its per-cluster certificate. It computes; a
// client on the same host that reaches the scheduler's port without the cluster's certificate
// (plain tcp://, the CA alone, another CA's certificate) cannot talk to it, while one holding the
// cluster's files can (the control that shows the refusals are TLS's doing).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { access, lstat, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { TandemClient } from "../src/client/client.ts";
import {
  eventually,
  spawnTandem,
  startCoordinatorProcess,
  type TandemProcess,
} from "./support/processes.ts";
import { enrollmentEnv, fund } from "./support/workers.ts";

const JOBS = fileURLToPath(new URL("./fixtures/jobs/", import.meta.url));
const FINAL = ["completed", "failed", "terminated", "expired"];

function daskMissing(): string | undefined {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import distributed"], { encoding: "utf8" });
  if (probe.status === 0) return undefined;
  const reason = `python3-distributed not importable: ${probe.stderr.trim().split("\n").at(-1) ?? ""}`;
  if (process.env.TANDEM_REQUIRE_ENGINES === "1") throw new Error(reason);
  process.stderr.write(`skipping the Dask TLS test: ${reason}\n`);
  return reason;
}

/** The head's command: compute, say where the scheduler is, then hold the cluster up. */
const HEAD_SCRIPT = `
import os, time
from distributed import Client
client = Client(timeout=60)
client.wait_for_workers(int(os.environ["TANDEM_WORLD_SIZE"]) - 1, timeout=120)
squares = client.gather(client.map(lambda x: x * x, range(100)))
workers = sorted(client.scheduler_info()["workers"])
protocols = sorted({w.split("://")[0] for w in workers})
print(f"scheduler={client.scheduler.address} workers={len(workers)} protocols={protocols} sum_of_squares={sum(squares)}", flush=True)
time.sleep(600)
`;

/** Runs the outside client (fixtures/jobs/dask_tls_client.py) against `address`. */
function outsideClient(address: string, ca = "-", cert = "-", key = "-"): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "/usr/bin/python3",
      [join(JOBS, "dask_tls_client.py"), address, ca, cert, key],
      { env: { PATH: "/usr/bin:/bin", HOME: tmpdir() }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr.on("data", () => undefined);
    child.on("error", reject);
    child.on("close", () => resolve(out.trim()));
  });
}

/** The host dirs where workers keep `clusterId`'s job dir (one per worker that ran a rank). */
async function jobDirsOf(clusterId: string): Promise<string[]> {
  const roots = (await readdir(tmpdir())).filter((n) => n.startsWith("tandem-jobs-"));
  const dirs: string[] = [];
  for (const root of roots) {
    const dir = join(tmpdir(), root, clusterId);
    if (
      await access(dir).then(
        () => true,
        () => false,
      )
    )
      dirs.push(dir);
  }
  return dirs;
}

describe(
  "Dask over TLS with the cluster's own certificate",
  { skip: daskMissing() ?? false },
  () => {
    const processes: TandemProcess[] = [];
    let home: string;
    let consumer: TandemClient;

    before(async () => {
      home = await mkdtemp(join(tmpdir(), "tandem-dasktls-"));
      // Its workers run without job networks (below), which a coordinator must then allow.
      const { coordinator, url } = await startCoordinatorProcess(join(home, "c"), [
        "--job-networks",
        "optional",
      ]);
      processes.push(coordinator);
      const anonymous = new TandemClient({ baseUrl: url });
      const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
      consumer = new TandemClient({ baseUrl: url, apiKey: account.apiKey });
      const adminKey = (await readFile(join(home, "c", "admin.key"), "utf8")).trim();
      await fund({ url, adminKey }, account.accountId, "50");
      for (let i = 0; i < 3; i++)
        processes.push(
          spawnTandem(
            [
              "worker",
              "start",
              "--region",
              "eu-west",
              "--zone",
              `eu-west-${"abc"[i]}`,
              "--home",
              join(home, `w${i}`),
              // The lock on its own: a rank's network namespace would keep this test's clients
              // from reaching the scheduler at all. This is the job that "somehow" reached it.
              "--no-job-networks",
            ],
            await enrollmentEnv(url, account.apiKey),
          ),
        );
      await eventually(
        async () =>
          (await anonymous.networkStats()).nodes.byStatus.available === 3 ? true : undefined,
        "3 verified workers",
        120_000,
      ).catch((error: unknown) => {
        throw new Error(
          processes.map((p) => [...p.stdout, ...p.stderr].join("\n")).join("\n--\n"),
          {
            cause: error,
          },
        );
      });
    });

    after(async () => {
      await Promise.all(processes.map((p) => p.kill("SIGTERM")));
      await rm(home, { recursive: true, force: true });
    });

    it("computes over tls://, and refuses clients without the cluster's certificate", async (t) => {
      const cluster = await consumer.deployCluster({
        kind: "dask",
        nodes: 3,
        hours: 1,
        gpuModel: "cpu",
        command: ["/usr/bin/python3", "-c", HEAD_SCRIPT],
      });
      const logs = async () =>
        (await consumer.clusterLogs(cluster.id)).items
          .map((l) => `[${l.rank}] ${l.text}`)
          .join("\n");
      const ran = await eventually(
        async () => {
          const view = await consumer.getCluster(cluster.id);
          assert.ok(!FINAL.includes(view.status), `ended early: ${view.status}\n${await logs()}`);
          return (
            /\[0\] scheduler=tls:\/\/(127\.0\.0\.1:\d+) workers=(\d+) protocols=\['(\w+)'\] sum_of_squares=(\d+)/.exec(
              await logs(),
            ) ?? undefined
          );
        },
        "the Dask computation",
        240_000,
      );
      const [, hostPort, workers, protocol, sum] = ran;
      assert.deepEqual([workers, protocol, sum], ["2", "tls", "328350"]);

      // Every rank's job dir holds the cluster's files; the key is 0600 and the job's, not root's.
      const dirs = await jobDirsOf(cluster.id);
      assert.equal(dirs.length, 3, "a job dir per rank");
      for (const dir of dirs) {
        const key = await lstat(join(dir, ".tandem/tls/key.pem"));
        assert.equal(key.mode & 0o777, 0o600);
        if (process.getuid?.() === 0) assert.notEqual(key.uid, 0, "owned by the sandbox user");
      }
      const tls = join(dirs[0]!, ".tandem/tls");
      const [ca, cert, key] = ["ca.pem", "cert.pem", "key.pem"].map((f) => join(tls, f)) as [
        string,
        string,
        string,
      ];

      const foreign = await mkdtemp(join(tmpdir(), "tandem-dasktls-foreign-"));
      try {
        const made = spawnSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=someone else",
            "-keyout",
            join(foreign, "key.pem"),
            "-out",
            join(foreign, "cert.pem"),
          ],
          { encoding: "utf8" },
        );
        assert.equal(made.status, 0, made.stderr);
        const [plain, caOnly, otherCa, otherCaTrustingUs, holder] = await Promise.all([
          outsideClient(`tcp://${hostPort}`),
          outsideClient(`tls://${hostPort}`, ca),
          outsideClient(
            `tls://${hostPort}`,
            join(foreign, "cert.pem"),
            join(foreign, "cert.pem"),
            join(foreign, "key.pem"),
          ),
          outsideClient(
            `tls://${hostPort}`,
            ca,
            join(foreign, "cert.pem"),
            join(foreign, "key.pem"),
          ),
          outsideClient(`tls://${hostPort}`, ca, cert, key),
        ]);
        t.diagnostic(JSON.stringify({ plain, caOnly, otherCa, otherCaTrustingUs, holder }));
        assert.match(plain, /^REFUSED/, "plain tcp:// gets nothing");
        assert.match(
          caOnly,
          /^REFUSED/,
          "the scheduler wants a certificate, not just trust in its CA",
        );
        assert.match(otherCa, /^REFUSED/, "another CA's certificate is refused");
        assert.match(otherCaTrustingUs, /^REFUSED/, "by the scheduler itself, too");
        assert.equal(
          holder,
          "CONNECTED workers=2 ran-on-scheduler",
          "the cluster's certificate gets in",
        );
      } finally {
        await rm(foreign, { recursive: true, force: true });
      }

      await consumer.terminateCluster(cluster.id);
      await eventually(
        async () => ((await jobDirsOf(cluster.id)).length === 0 ? true : undefined),
        "every job dir, with its key, removed",
        60_000,
      );
    });
  },
);
