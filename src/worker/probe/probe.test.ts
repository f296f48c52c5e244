import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { gpuModelByName } from "../../core/gpu-catalog.ts";
import { HardwareReport } from "../../protocol/hardware.ts";
import { NvidiaSmiParseError, parseNvidiaSmiCsv, queryNvidiaSmi } from "./nvidia-smi.ts";
import { parseOsRelease, probeHardware, systemHardwareProbe } from "./system-probe.ts";

const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/nvidia-smi/", import.meta.url));
const fixture = (name: string): string => path.join(FIXTURES, name, "nvidia-smi");

let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-probe-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("parseNvidiaSmiCsv", () => {
  it("parses a line, trimming spaces", () => {
    assert.deepEqual(
      parseNvidiaSmiCsv(
        "0, GPU-5f4b2c1e-0d9a-4b7e-9c3f-1a2b3c4d5e6f, NVIDIA H100 80GB HBM3, 81559, 535.129.03, 00000000:18:00.0, 0, 32\n",
      ),
      [
        {
          index: 0,
          uuid: "GPU-5f4b2c1e-0d9a-4b7e-9c3f-1a2b3c4d5e6f",
          name: "NVIDIA H100 80GB HBM3",
          memoryTotalMiB: 81559,
          driverVersion: "535.129.03",
          pciBusId: "00000000:18:00.0",
          utilizationPct: 0,
          temperatureC: 32,
        },
      ],
    );
  });

  it("reads [N/A] and [Not Supported] telemetry as null and skips blank lines", () => {
    const gpus = parseNvidiaSmiCsv(
      "\r\n0, GPU-1, NVIDIA A100-SXM4-80GB, 81920, 550.90.07, 00000000:07:00.0, [N/A], [Not Supported]\r\n\r\n",
    );
    assert.equal(gpus.length, 1);
    assert.equal(gpus[0]?.utilizationPct, null);
    assert.equal(gpus[0]?.temperatureC, null);
  });

  it("returns [] for empty output", () => {
    assert.deepEqual(parseNvidiaSmiCsv(""), []);
  });

  it("throws NvidiaSmiParseError naming the line on malformed input", () => {
    const ok = "0, GPU-1, NVIDIA GeForce RTX 4090, 24564, 550.54.14, 00000000:01:00.0, 4, 41";
    const cases: Array<[string, RegExp]> = [
      [`${ok}\n1, GPU-2, NVIDIA GeForce RTX 4090, 24564`, /line 2: expected 8 fields, got 4/],
      [`${ok}, extra`, /line 1: expected 8 fields, got 9/],
      [ok.replace("24564", "24564 MiB"), /memory\.total is not an integer MiB/],
      [ok.replace("24564", "[N/A]"), /memory\.total is not an integer MiB/],
      [ok.replace(/^0/, "x"), /index is not an integer/],
      [ok.replace(", 4, 41", ", busy, 41"), /utilization\.gpu is not a number/],
      [ok.replace(", 4, 41", ", 140, 41"), /line 1:/],
      [ok.replace("GPU-1", ""), /line 1:/],
      [
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        /line 1: expected 8/,
      ],
    ];
    for (const [input, message] of cases) {
      assert.throws(
        () => parseNvidiaSmiCsv(input),
        (e: unknown) => e instanceof NvidiaSmiParseError && message.test(e.message),
        input,
      );
    }
  });
});

describe("queryNvidiaSmi with fixture binaries", () => {
  it("reads eight H100s", async () => {
    const { gpus, warning } = await queryNvidiaSmi({ command: fixture("h100x8") });
    assert.equal(warning, undefined);
    assert.equal(gpus.length, 8);
    assert.deepEqual(
      gpus.map((g) => g.index),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.equal(new Set(gpus.map((g) => g.uuid)).size, 8);
    assert.equal(new Set(gpus.map((g) => g.pciBusId)).size, 8);
    assert.equal(gpus[0]?.uuid, "GPU-a8fc067a-25ca-4385-b834-f75648392471");
    assert.equal(gpus[7]?.pciBusId, "00000000:DB:00.0");
    for (const g of gpus) {
      assert.equal(g.name, "NVIDIA H100 80GB HBM3");
      assert.equal(g.memoryTotalMiB, 81559);
      assert.equal(g.driverVersion, "535.129.03");
      assert.equal(gpuModelByName(g.name)?.id, "h100-80gb");
    }
  });

  it("reads one RTX 4090 and one RTX 3060 Ti, each mapping to its own model", async () => {
    const cases = [
      [
        "rtx4090",
        "NVIDIA GeForce RTX 4090",
        24564,
        "GPU-109e272d-51e4-4b96-87b9-8d30a7cc95b5",
        "rtx-4090",
      ],
      [
        "rtx3060ti",
        "NVIDIA GeForce RTX 3060 Ti",
        8192,
        "GPU-fde497a3-77bb-4e31-8124-f3545e122e60",
        "rtx-3060-ti",
      ],
    ] as const;
    for (const [dir, name, memoryTotalMiB, uuid, modelId] of cases) {
      const { gpus, warning } = await queryNvidiaSmi({ command: fixture(dir) });
      assert.equal(warning, undefined);
      assert.equal(gpus.length, 1);
      assert.equal(gpus[0]?.name, name);
      assert.equal(gpus[0]?.memoryTotalMiB, memoryTotalMiB);
      assert.equal(gpus[0]?.uuid, uuid);
      assert.equal(gpuModelByName(name)?.id, modelId);
    }
  });

  it("finds nvidia-smi on PATH", async () => {
    const env = {
      ...process.env,
      PATH: `${path.join(FIXTURES, "rtx4090")}${path.delimiter}${process.env.PATH ?? ""}`,
    };
    const { gpus } = await queryNvidiaSmi({ env });
    assert.deepEqual(
      gpus.map((g) => g.name),
      ["NVIDIA GeForce RTX 4090"],
    );
  });

  it("reports no GPUs, with the driver's reason, when nvidia-smi fails", async () => {
    const { gpus, warning } = await queryNvidiaSmi({ command: fixture("none") });
    assert.deepEqual(gpus, []);
    assert.match(
      warning ?? "",
      /exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/,
    );
  });

  it("reports no GPUs and no warning when nvidia-smi is missing", async () => {
    assert.deepEqual(await queryNvidiaSmi({ command: path.join(tmp, "absent", "nvidia-smi") }), {
      gpus: [],
    });
    assert.deepEqual(await queryNvidiaSmi({ env: { PATH: tmp } }), { gpus: [] });
  });

  it("rejects when nvidia-smi succeeds but prints something unparseable", async () => {
    const script = path.join(tmp, "garbled-nvidia-smi");
    await writeFile(script, "#!/bin/sh\necho 'index, uuid, name'\n");
    await chmod(script, 0o755);
    await assert.rejects(queryNvidiaSmi({ command: script }), NvidiaSmiParseError);
  });
});

describe("probeHardware", () => {
  it("reports this machine with the fixture's GPUs, passing HardwareReport", async () => {
    const report = await probeHardware({ workDir: tmp, nvidiaSmi: fixture("h100x8") });
    assert.deepEqual(HardwareReport.parse(report), report);
    assert.equal(report.gpus.length, 8);
    assert.equal(report.cpu.cores, os.cpus().length || os.availableParallelism());
    assert.equal(report.cpu.arch, os.arch());
    assert.equal(report.os.platform, os.platform());
    assert.ok(report.memoryTotalMiB > 0);
    assert.ok(report.diskFreeMiB > 0);
  });

  it("reports a CPU-only machine and passes on the warning when the driver is absent", async () => {
    const warnings: string[] = [];
    const report = await probeHardware({
      workDir: tmp,
      nvidiaSmi: fixture("none"),
      onWarning: (m) => warnings.push(m),
    });
    assert.deepEqual(report.gpus, []);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /NVIDIA-SMI has failed/);
  });

  it("reads the distro from os-release, '' when the file is absent", async () => {
    const file = path.join(tmp, "os-release");
    await writeFile(
      file,
      'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n',
    );
    const withFile = await probeHardware({
      workDir: tmp,
      nvidiaSmi: fixture("rtx3060ti"),
      osReleasePath: file,
    });
    assert.equal(withFile.os.distro, "Debian GNU/Linux 12 (bookworm)");
    const without = await probeHardware({
      workDir: tmp,
      nvidiaSmi: fixture("rtx3060ti"),
      osReleasePath: path.join(tmp, "no-such-os-release"),
    });
    assert.equal(without.os.distro, "");
  });

  it("is available behind the HardwareProbe port", async () => {
    const probe = systemHardwareProbe({ workDir: tmp, nvidiaSmi: fixture("rtx4090") });
    const report = await probe.probe();
    assert.equal(gpuModelByName(report.gpus[0]?.name ?? "")?.id, "rtx-4090");
  });
});

describe("parseOsRelease", () => {
  it("unquotes PRETTY_NAME and returns '' without one", () => {
    assert.equal(parseOsRelease('PRETTY_NAME="Ubuntu 22.04.4 LTS"'), "Ubuntu 22.04.4 LTS");
    assert.equal(parseOsRelease("PRETTY_NAME='Alpine Linux v3.19'"), "Alpine Linux v3.19");
    assert.equal(parseOsRelease("PRETTY_NAME=Arch"), "Arch");
    assert.equal(parseOsRelease('PRETTY_NAME="say \\"hi\\""'), 'say "hi"');
    assert.equal(parseOsRelease("NAME=Foo\nID=foo\n"), "");
  });
});
