import assert from "node:assert/strict";
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { diskUsageBytes, watchDisk } from "./disk-watch.ts";

const MIB = 1024 * 1024;
let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-disk-watch-"));
});
after(() => rm(tmp, { recursive: true, force: true }));

describe("job dir disk watch", () => {
  it("counts allocated blocks once per inode: hard links once, symlinked files not at all", async () => {
    const outside = path.join(tmp, "outside");
    const dir = path.join(tmp, "job");
    await mkdir(path.join(dir, "sub"), { recursive: true });
    await writeFile(outside, Buffer.alloc(8 * MIB, 1));
    await writeFile(path.join(dir, "sub", "data"), Buffer.alloc(2 * MIB, 1));
    await link(path.join(dir, "sub", "data"), path.join(dir, "again"));
    await symlink(outside, path.join(dir, "elsewhere"));
    const used = await diskUsageBytes(dir);
    assert.ok(used >= 2 * MIB && used < 3 * MIB, `${used} bytes`);
    assert.equal(await diskUsageBytes(path.join(tmp, "missing")), 0);
  });

  it("reports a dir at its limit when stopped, even between samples", async () => {
    const dir = path.join(tmp, "final");
    await mkdir(dir);
    let calls = 0;
    const watch = watchDisk({
      dir,
      limitMiB: 1,
      intervalMs: 3_600_000,
      onExceeded: () => calls++,
      log: () => undefined,
    });
    await writeFile(path.join(dir, "f"), Buffer.alloc(MIB, 1));
    assert.equal(await watch.stop(), true);
    assert.equal(calls, 0, "the job has ended already: nothing to stop");
  });
});
