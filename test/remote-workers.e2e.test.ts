/**
 * Workers on other machines (issue 14 item 4), real processes: a coordinator serving its API and
 * worker channel over TLS with a private CA's certificate (made here with the `openssl` CLI); a
 * worker trusting that CA with `--ca-file` registers and heartbeats over wss, one without it
 * refuses the certificate; bad TLS files stop the coordinator. Across two "machines" (network
 * namespaces of the test's own joined by a veth pair): a worker refuses plain ws:// to the other
 * machine's coordinator unless `--insecure`, and joins a TLS coordinator on `--host 0.0.0.0` the
 * way the README says. `tandem dev --host` prints URLs that work.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { get } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, test, type TestContext } from "node:test";
import {
  eventually,
  spawnTandem,
  type TandemProcess,
  SMALL_PROOF_FLAGS,
} from "./support/processes.ts";
import { makeTestCertificates } from "./support/tls-certs.ts";

const run = promisify(execFile);
const COORDINATOR_FLAGS = "--port 0 --json --log-level warn";
const WORKER_ARGS = ["--region", "eu-west", "--zone", "eu-west-a", "--allow-unsandboxed"];

/** GET over https trusting only `ca`: the status and the body's text. */
function httpsGet(url: string, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    }).on("error", reject);
  });
}

/** `url` serves the explorer: its page, or (in a checkout without a web build) the page saying so. */
async function assertExplorerAt(url: string): Promise<void> {
  const response = await fetch(url);
  assert.match(response.headers.get("content-type") ?? "", /text\/html/);
  assert.match(await response.text(), /<title>Tandem/);
}

/** A temp dir and the processes a test starts, all removed after it (even when it fails). */
async function scratch(t: TestContext, prefix: string) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const processes: TandemProcess[] = [];
  t.after(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    await rm(dir, { recursive: true, force: true });
  });
  const start = (...args: Parameters<typeof spawnTandem>) => {
    const p = spawnTandem(...args);
    processes.push(p);
    return p;
  };
  return { dir, start };
}

/** Runs a CLI command to its end and answers its JSON output. */
async function cli<T>(p: TandemProcess): Promise<T> {
  assert.equal(await p.exited, 0, p.stderr.join("\n") + p.stdout.join("\n"));
  return JSON.parse(p.stdout.join("\n")) as T;
}

/**
 * Two "machines": network namespaces of this test's own joined by a veth pair, a at 198.51.100.1
 * and b at 198.51.100.2 (TEST-NET-2); each reaches the other only over that link. Removed after
 * the test, failed or not.
 */
async function twoMachines(t: TestContext) {
  const tag = `${process.pid % 100_000}${randomBytes(2).toString("hex")}`;
  const machine = (name: "a" | "b", address: string) => ({
    ns: `tdrm-${tag}-${name}`,
    link: `tdrm${tag}${name}`,
    address,
    via: ["ip", "netns", "exec", `tdrm-${tag}-${name}`],
  });
  const a = machine("a", "198.51.100.1");
  const b = machine("b", "198.51.100.2");
  for (const m of [a, b]) {
    await run("ip", ["netns", "add", m.ns]);
    t.after(() => run("ip", ["netns", "del", m.ns]));
  }
  const veth = `link add ${a.link} netns ${a.ns} type veth peer name ${b.link} netns ${b.ns}`;
  await run("ip", veth.split(" "));
  for (const m of [a, b]) {
    await run("ip", ["-n", m.ns, "link", "set", "lo", "up"]);
    await run("ip", ["-n", m.ns, "addr", "add", `${m.address}/24`, "dev", m.link]);
    await run("ip", ["-n", m.ns, "link", "set", m.link, "up"]);
  }
  return { a, b };
}

/** Why this machine cannot make the two machines' namespaces, if it cannot. */
const NO_NAMESPACES =
  process.getuid?.() === 0 ? undefined : "network namespaces and veth links need root";

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe("workers on other machines", () => {
  test("TLS: https API and wss worker channel; --ca-file trusts a private CA, no CA is refused", async (t) => {
    const { dir, start } = await scratch(t, "tandem-tls-");
    const certs = await makeTestCertificates(dir, ["127.0.0.1"]);
    const home = join(dir, "coordinator");
    const coordinator = start(
      [
        ...`coordinator ${COORDINATOR_FLAGS} --heartbeat-interval-ms 200`.split(" "),
        ...["--tls-cert", certs.certFile, "--tls-key", certs.keyFile],
      ],
      { TANDEM_HOME: home },
    );
    const { url } = JSON.parse(await coordinator.line(/^\{/, 60_000)) as { url: string };
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(certs.caFile, "utf8");
    assert.equal((await httpsGet(`${url}/v1/health`, ca)).status, 200);
    // Plain http on the same port is not served, and a client without the CA does not connect.
    await assert.rejects(fetch(`${url.replace("https:", "http:")}/v1/health`));
    await assert.rejects(fetch(`${url}/v1/health`), (error: Error) =>
      /CERT|VERIFY/.test(String((error.cause as NodeJS.ErrnoException | undefined)?.code)),
    );

    // The CLI trusts the CA through NODE_EXTRA_CA_CERTS: a supplier, and a token for a machine.
    const asAdmin = {
      TANDEM_HOME: join(dir, "supplier"),
      TANDEM_URL: url,
      NODE_EXTRA_CA_CERTS: certs.caFile,
    };
    const adminKey = (await readFile(join(home, "admin.key"), "utf8")).trim();
    // Without it, the CLI says how to trust the CA.
    const untrustingCli = start(["nodes", "list", "--json"], { TANDEM_URL: url });
    assert.equal(await untrustingCli.exited, 1);
    assert.match(untrustingCli.stdout.join("\n"), /certificate.*NODE_EXTRA_CA_CERTS=/);
    const supplier = await cli<{ apiKey: string }>(
      start(["account", "create", "--role", "supplier", "--json"], {
        ...asAdmin,
        TANDEM_API_KEY: adminKey,
      }),
    );
    const tokenFile = join(dir, "enroll.token");
    await cli(
      start(["worker", "enroll-token", "--out", tokenFile, "--json"], {
        ...asAdmin,
        TANDEM_API_KEY: supplier.apiKey,
      }),
    );

    // Without the CA the worker stops at the certificate: nothing registered, the token unused.
    const workerEnv = { TANDEM_HOME: join(dir, "worker-machine"), TANDEM_URL: url };
    const untrusting = start(
      ["worker", "start", "--json", "--enroll-token-file", tokenFile, ...WORKER_ARGS],
      workerEnv,
    );
    assert.equal(await untrusting.exited, 1);
    const refusal = JSON.parse(untrusting.stdout.join("\n")) as {
      error: { code: string; message: string };
    };
    assert.equal(refusal.error.code, "COORDINATOR_CERT_UNTRUSTED");
    assert.match(refusal.error.message, /--ca-file/);

    // With --ca-file it registers (the token is still good), connects over wss and heartbeats.
    const worker = start(
      [
        "worker",
        "start",
        "--json",
        "--enroll-token-file",
        tokenFile,
        "--ca-file",
        certs.caFile,
        ...WORKER_ARGS,
      ],
      workerEnv,
    );
    const { nodeId } = JSON.parse(await worker.line(/^\{/, 60_000)) as { nodeId: string };
    await eventually(async () => {
      const node = JSON.parse((await httpsGet(`${url}/v1/nodes/${nodeId}`, ca)).text) as {
        status: string;
      };
      return node.status === "available" ? true : undefined;
    }, "the node to be verified over wss and available");
    await eventually(async () => {
      const metrics = (await httpsGet(`${url}/metrics`, ca)).text;
      const count = Number(/^tandem_heartbeats_total (\d+)/m.exec(metrics)?.[1] ?? 0);
      return count >= 5 ? true : undefined;
    }, "heartbeats over wss");
  });

  test("a coordinator refuses TLS files it cannot use, with TLS_CONFIG_INVALID", async (t) => {
    const { dir, start } = await scratch(t, "tandem-tls-bad-");
    const certs = await makeTestCertificates(dir, ["127.0.0.1"]);
    const cases: Array<[string, string[], RegExp]> = [
      [
        "mismatched key",
        ["--tls-cert", certs.certFile, "--tls-key", certs.otherKeyFile],
        /is not the key/,
      ],
      [
        "unreadable cert",
        ["--tls-cert", join(dir, "missing.pem"), "--tls-key", certs.keyFile],
        /cannot read --tls-cert/,
      ],
      [
        "a key as cert",
        ["--tls-cert", certs.keyFile, "--tls-key", certs.keyFile],
        /no PEM certificate/,
      ],
      ["cert without key", ["--tls-cert", certs.certFile], /both --tls-cert and --tls-key/],
    ];
    for (const [name, flags, message] of cases) {
      const home = join(dir, name.replaceAll(" ", "-"));
      const p = start(["coordinator", "--port", "0", "--json", ...flags], { TANDEM_HOME: home });
      assert.equal(await p.exited, 1, name);
      const { error } = JSON.parse(p.stdout.join("\n")) as {
        error: { code: string; message: string };
      };
      assert.equal(error.code, "TLS_CONFIG_INVALID", name);
      assert.match(error.message, message, name);
      // Refused before the coordinator made anything: no database, no admin key.
      assert.equal(await exists(home), false, name);
    }
  });

  test("a worker refuses plain ws:// to another machine unless --insecure", async (t) => {
    if (NO_NAMESPACES !== undefined) return t.skip(NO_NAMESPACES);
    const { dir, start } = await scratch(t, "tandem-insecure-");
    const { a, b } = await twoMachines(t);
    const via = a.via;
    const home = join(dir, "coordinator");
    const coordinator = start(
      [
        "coordinator",
        ...SMALL_PROOF_FLAGS,
        "--host",
        "198.51.100.1",
        "--port",
        "0",
        "--json",
        "--log-level",
        "warn",
      ],
      { TANDEM_HOME: home },
      { via },
    );
    const ready = JSON.parse(await coordinator.line(/^\{/, 60_000)) as {
      url: string;
      listen: string;
    };
    assert.match(ready.url, /^http:\/\/198\.51\.100\.1:\d+$/);
    // It warns that other machines' workers will refuse plain http.
    await eventually(
      () =>
        Promise.resolve(
          coordinator.stderr.find((l) => /^warning: plain http .* --insecure/.test(l)),
        ),
      "the coordinator's plain-http warning",
    );
    const wsUrl = ready.url.replace("http:", "ws:");
    const asAdmin = {
      TANDEM_HOME: join(dir, "supplier"),
      TANDEM_URL: ready.url,
      TANDEM_API_KEY: (await readFile(join(home, "admin.key"), "utf8")).trim(),
    };
    const supplier = await cli<{ apiKey: string }>(
      start(["account", "create", "--role", "supplier", "--json"], asAdmin, { via }),
    );
    const tokenFile = join(dir, "enroll.token");
    await cli(
      start(
        ["worker", "enroll-token", "--out", tokenFile, "--json"],
        { ...asAdmin, TANDEM_API_KEY: supplier.apiKey },
        { via },
      ),
    );

    // Refused at once: non-zero exit, the reason, nothing written on the worker machine.
    const workerHome = join(dir, "worker-machine");
    const args = ["worker", "start", "--json", "--url", wsUrl, "--enroll-token-file", tokenFile];
    const refused = start([...args, ...WORKER_ARGS], { TANDEM_HOME: workerHome }, { via: b.via });
    assert.equal(await refused.exited, 1);
    const { error } = JSON.parse(refused.stdout.join("\n")) as {
      error: { code: string; message: string };
    };
    assert.equal(error.code, "INSECURE_COORDINATOR");
    assert.match(error.message, /refusing plain ws:\/\/ to 198\.51\.100\.1:\d+.*--insecure/);
    assert.equal(await exists(workerHome), false);

    // Nothing reached the coordinator: no device registered.
    const nodes = await cli<{ items: unknown[] }>(
      start(["nodes", "list", "--json"], { TANDEM_URL: ready.url }, { via }),
    );
    assert.deepEqual(nodes.items, []);

    // With --insecure it connects, registers and is verified over plain ws.
    const worker = start(
      [...args, "--insecure", ...WORKER_ARGS],
      { TANDEM_HOME: workerHome },
      { via: b.via },
    );
    const { nodeId } = JSON.parse(await worker.line(/^\{/, 60_000)) as { nodeId: string };
    await eventually(async () => {
      const show = start(["nodes", "show", nodeId, "--json"], { TANDEM_URL: ready.url }, { via });
      const node = await cli<{ status: string }>(show);
      return node.status === "available" ? true : undefined;
    }, "the insecure worker's node to be available");

    // `tandem dev` on that address: its own workers reach it there (this same machine).
    const dev = start(
      ["dev", "--host", "198.51.100.1", "--port", "0", "--workers", "1", "--json"],
      { TANDEM_HOME: join(dir, "dev") },
      { via },
    );
    const summary = JSON.parse(await dev.line(/^\{/, 120_000)) as { url: string; listen: string };
    assert.match(summary.url, /^http:\/\/198\.51\.100\.1:\d+$/);
    assert.equal(summary.listen, `198.51.100.1:${new URL(summary.url).port}`);
  });

  test("the README's way: a worker on another machine joins a TLS coordinator on --host 0.0.0.0", async (t) => {
    if (NO_NAMESPACES !== undefined) return t.skip(NO_NAMESPACES);
    const { dir, start } = await scratch(t, "tandem-remote-tls-");
    const { a, b } = await twoMachines(t);
    const certs = await makeTestCertificates(dir, [a.address]);
    const home = join(dir, "coordinator");
    // Machine a: the coordinator, on every address, with its certificate.
    const coordinator = start(
      [
        ...`coordinator --host 0.0.0.0 ${COORDINATOR_FLAGS}`.split(" "),
        ...["--tls-cert", certs.certFile, "--tls-key", certs.keyFile],
      ],
      { TANDEM_HOME: home },
      { via: a.via },
    );
    const ready = JSON.parse(await coordinator.line(/^\{/, 60_000)) as { listen: string };
    const url = `https://${a.address}:${ready.listen.split(":").at(-1)}`;
    // The supplier's machine (here a too): an account and a token file to carry over.
    const supplierEnv = {
      TANDEM_HOME: join(dir, "supplier"),
      TANDEM_URL: url,
      NODE_EXTRA_CA_CERTS: certs.caFile,
    };
    const supplier = await cli<{ apiKey: string }>(
      start(
        ["account", "create", "--role", "supplier", "--json"],
        {
          ...supplierEnv,
          TANDEM_API_KEY: (await readFile(join(home, "admin.key"), "utf8")).trim(),
        },
        { via: a.via },
      ),
    );
    const tokenFile = join(dir, "enroll.token");
    await cli(
      start(
        ["worker", "enroll-token", "--out", tokenFile, "--json"],
        { ...supplierEnv, TANDEM_API_KEY: supplier.apiKey },
        { via: a.via },
      ),
    );
    // Machine b: the one command, then the check the README gives, from b.
    const worker = start(
      ["worker", "start", "--json", "--url", url, "--ca-file", certs.caFile].concat([
        "--enroll-token-file",
        tokenFile,
        ...WORKER_ARGS,
      ]),
      { TANDEM_HOME: join(dir, "worker-machine") },
      { via: b.via },
    );
    const { nodeId } = JSON.parse(await worker.line(/^\{/, 60_000)) as { nodeId: string };
    await eventually(async () => {
      const list = start(
        ["nodes", "list", "--json", "--url", url],
        { NODE_EXTRA_CA_CERTS: certs.caFile },
        { via: b.via },
      );
      const { items } = await cli<{ items: Array<{ id: string; status: string }> }>(list);
      return items.some((n) => n.id === nodeId && n.status === "available") ? true : undefined;
    }, "the remote worker's node to be available");
  });

  test("tandem dev --host: 127.0.0.1 prints the explorer URL; 0.0.0.0 is accepted and says so", async (t) => {
    const { dir, start } = await scratch(t, "tandem-dev-host-");
    const local = start(["dev", "--host", "127.0.0.1", "--port", "0", "--workers", "0"], {
      TANDEM_HOME: join(dir, "local"),
    });
    const explorer = await local.line(/^\s+explorer:/, 60_000);
    const explorerUrl = /explorer:\s+(\S+)/.exec(explorer)?.[1];
    assert.match(explorerUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/$/);
    await assertExplorerAt(explorerUrl!);
    await local.kill("SIGTERM");

    const everywhere = start(
      ["dev", "--host", "0.0.0.0", "--port", "0", "--workers", "1", "--json"],
      { TANDEM_HOME: join(dir, "everywhere") },
    );
    const summary = JSON.parse(await everywhere.line(/^\{/, 120_000)) as {
      url: string;
      listen: string;
      explorerUrl: string;
    };
    // The URL printed is one this machine can open; the listen address says every address.
    assert.match(summary.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(summary.listen, `0.0.0.0:${new URL(summary.url).port}`);
    assert.equal(summary.explorerUrl, `${summary.url}/`);
    await assertExplorerAt(summary.explorerUrl);
  });
});
