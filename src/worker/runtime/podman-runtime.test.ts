// The podman runtime against real podman (Debian's, installed by .ci/run) with an image imported
// from a local busybox root file system: no registry is reachable here, and the runtime never
// pulls. Skipped, saying why, where podman cannot run containers (not root, not installed).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { importBusyboxImage } from "../../../test/support/busybox-image.ts";
import type { JobRuntime, JobSpec, RunningJob } from "./job-runtime.ts";
import { createJobNetns } from "../network/job-netns.ts";
import { createPodmanRuntime } from "./podman-runtime.ts";

const run = promisify(execFile);
const IMAGE = `localhost/tandem-test-busybox:${process.pid}`;

async function output(job: RunningJob) {
  let stdout = "";
  let stderr = "";
  job.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  job.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = await job.exited;
  return { exit, stdout, stderr };
}

describe("podman runtime", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tandem-podman-test-"));
  const created =
    process.getuid?.() === 0
      ? await createPodmanRuntime({ configDir: dir })
      : { unavailable: "podman runs containers with limits only as root here" };
  const skip = "unavailable" in created ? created.unavailable : false;
  if (skip !== false) process.stderr.write(`skipping podman runtime tests: ${skip}\n`);
  const runtime = "runtime" in created ? created.runtime : (undefined as unknown as JobRuntime);
  const env = { PATH: process.env.PATH ?? "", CONTAINERS_CONF: path.join(dir, "containers.conf") };
  let jobs = 0;
  const spec = (command: string[], extra: Partial<JobSpec> = {}): JobSpec => ({
    jobId: `job_podman_${process.pid}_${jobs++}`,
    command,
    env: { GREETING: "hello" },
    jobDir: path.join(dir, "jobs", `j${jobs}`),
    limits: {},
    network: "none",
    image: IMAGE,
    ...extra,
  });

  let removeImage = async () => {};
  before(async () => {
    if (skip === false) removeImage = await importBusyboxImage(IMAGE, env);
  });

  after(async () => {
    await removeImage();
    await rm(dir, { recursive: true, force: true });
  });

  it("ends a container past its memory limit with limitExceeded memory", { skip }, async () => {
    const { exit } = await output(
      await runtime.run(
        spec(["sh", "-c", "head -c 268435456 /dev/zero | tail -c 268435456 > /dev/null"], {
          limits: { memoryMiB: 32 },
        }),
      ),
    );
    assert.equal(exit.oomKilled, true, JSON.stringify(exit));
    assert.equal(exit.limitExceeded, "memory");
  });

  it(
    "runs the command in the image as nobody, in /job, with only the job's environment",
    { skip },
    async () => {
      const job = await runtime.run(
        spec([
          "sh",
          "-c",
          'id -u; pwd; echo "$GREETING"; echo ok > out.txt; echo warn >&2; exit 3',
        ]),
      );
      const { exit, stdout, stderr } = await output(job);
      assert.deepEqual(exit, { exitCode: 3, signal: null, oomKilled: false });
      assert.equal(stdout, "65534\n/job\nhello\n");
      assert.equal(stderr, "warn\n");
    },
  );

  it("keeps the image read-only and the host out of sight", { skip }, async () => {
    const secret = path.join(dir, "host-secret");
    await writeFile(secret, "do not read", { mode: 0o644 });
    const s = spec([
      "sh",
      "-c",
      `cat ${secret}; cat /etc/shadow; touch /bin/evil && echo WROTE; echo done > result`,
    ]);
    const { stdout, stderr } = await output(await runtime.run(s));
    assert.doesNotMatch(stdout, /do not read|WROTE/);
    assert.match(stderr, /No such file|Read-only file system/);
    assert.equal(await readFile(path.join(s.jobDir, "result"), "utf8"), "done\n");
  });

  it("ends every process of the job on kill", { skip }, async () => {
    const job = await runtime.run(spec(["sh", "-c", "sleep 300 & sleep 300"]));
    const started = Date.now();
    await job.kill(2000);
    const { exit } = await output(job);
    assert.notEqual(exit.exitCode, 0);
    assert.ok(Date.now() - started < 10_000);
    const { stdout } = await run("podman", ["ps", "--all", "--format", "{{.Names}}"], { env });
    assert.doesNotMatch(stdout, new RegExp(job.pid.toString()), "no container left");
    assert.doesNotMatch(stdout, /tandem-job_podman_/);
  });

  it("enforces the task limit", { skip }, async () => {
    const job = await runtime.run(
      spec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait"], {
        limits: { maxProcesses: 6 },
      }),
    );
    const { stderr } = await output(job);
    assert.match(stderr, /can't fork|Resource temporarily unavailable/);
    assert.equal(job.limitsEnforcedBy.maxProcesses?.startsWith("cgroup"), true);
  });

  it("runs the container in the job's own network namespace", { skip }, async () => {
    // A namespace with no way out (internet: false) and a marker veth pair inside it: nothing of
    // this machine's own network changes.
    const netns = await createJobNetns({
      workerTag: `p${process.pid.toString(16)}`.slice(0, 8),
      internet: false,
    });
    try {
      await run("ip", [
        "-n",
        netns.name,
        "link",
        "add",
        "tdmmark0",
        "type",
        "veth",
        "peer",
        "name",
        "tdmmark1",
      ]);
      const { exit, stdout } = await output(
        await runtime.run(
          spec(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"], {
            network: { namespace: netns.path },
          }),
        ),
      );
      assert.equal(exit.exitCode, 0);
      assert.deepEqual(stdout.trim().split("\n"), ["lo", "tdmmark0", "tdmmark1"]);
    } finally {
      await netns.destroy();
    }
  });

  it("refuses an image this node does not have, and a job without one", { skip }, async () => {
    await assert.rejects(runtime.run(spec(["true"], { image: "localhost/absent:1" })), {
      code: "IMAGE_MISSING",
      message: /not on this node/,
    });
    const noImage: JobSpec = { ...spec(["true"]) };
    delete noImage.image;
    await assert.rejects(runtime.run(noImage), { code: "INVALID_JOB_SPEC" });
  });
});
