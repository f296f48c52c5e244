/**
 * A SIGKILLed agent runs no cleanup: its fencing watchdog, which sees its stdin end, kills the
 * agent's jobs and removes their networks (namespace, veth, nftables table). Run in a simulated
 * host (test/support/hosts.ts), the worker side in a driver process standing for the agent.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createHosts, type Hosts } from "../../../test/support/hosts.ts";
import {
  jobNetworkLeftovers,
  startJobNetworkDriver,
} from "../../../test/support/job-network-driver.ts";

describe(
  "fencing watchdog and job networks",
  { skip: process.getuid?.() !== 0 && "needs root" },
  () => {
    let hosts: Hosts;
    let tmp = "";
    before(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-fence-net-"));
      await chmod(tmp, 0o711);
      hosts = await createHosts({ hosts: 1 });
    });
    after(async () => {
      await hosts.destroy();
      await rm(tmp, { recursive: true, force: true });
    });

    it("a SIGKILLed agent's fenced job leaves no namespace, veth or table", async () => {
      const host = hosts.hosts[0]!;
      const tag = hosts.workerTag;
      const leftovers = () => jobNetworkLeftovers(hosts, host, tag);
      const agent = startJobNetworkDriver(hosts, host);
      const answer = await agent.request({
        op: "run-fenced",
        options: { workerTag: tag, internet: true },
        command: ["sleep", "1000"],
        jobDir: path.join(tmp, "job"),
      });
      assert.equal(answer.ok, true, JSON.stringify(answer));
      const pid = answer.pid as number;
      assert.equal((await leftovers()).length, 3);

      await new Promise((resolve) => {
        agent.child.once("close", resolve);
        agent.child.kill("SIGKILL");
      });
      let left = await leftovers();
      for (let i = 0; i < 200 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        left = await leftovers();
      }
      assert.deepEqual(left, []);
      // Killed: gone, or a zombie its new parent has not reaped yet.
      const state = () =>
        existsSync(`/proc/${pid}/stat`)
          ? (readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] ?? "?")
          : "gone";
      for (let i = 0; i < 100 && !["gone", "Z"].includes(state()); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.ok(["gone", "Z"].includes(state()), `the job is still running (${state()})`);
    });
  },
);
