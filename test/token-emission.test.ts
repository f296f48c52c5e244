/**
 * The emission schedule over the API and the CLI (issue 16 item 2), on SQLite and PostgreSQL:
 * `GET /v1/token/emission` answers the 20 years' totals and what the current hour emits, hours
 * counted from the network's genesis: the configured `genesisAtMs`, else the coordinator's first
 * start on its database, which a restart keeps.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MS_PER_HOUR } from "../src/core/emission.ts";
import { money } from "../src/core/money.ts";
import { EmissionView } from "../src/protocol/token.ts";
import {
  ManualClock,
  assertError,
  forEachDatabase,
  httpRequest,
  startTestCoordinator,
} from "./support/coordinator.ts";
import { spawnTandem } from "./support/processes.ts";

const T0 = Date.UTC(2026, 0, 1);
const YEAR_MS = 8760 * MS_PER_HOUR;

forEachDatabase("token emission", (db) => {
  test("the schedule from the first start: 20 years summing to 300,000,000, hour by hour; a restart keeps genesis", async (t) => {
    const clock = new ManualClock(T0 + 1234);
    let tc = await db.startCoordinator({ clock });
    t.after(() => tc.close());

    const anonymous = await httpRequest(tc.url, "GET", "/v1/token/emission");
    assert.equal(anonymous.status, 200, anonymous.text);
    const first = EmissionView.parse(anonymous.json);
    assert.equal(first.years.length, 20);
    assert.deepEqual(first.years[0], { year: 1, total: "40000000.000000" });
    assert.deepEqual(first.years[19], { year: 20, total: "3242888.663112" });
    assert.deepEqual(
      first.years.map((y) => y.year),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const sum = first.years.reduce((total, y) => total + money(y.total), 0n);
    assert.equal(sum, money("300000000"));
    assert.deepEqual(
      { hour: first.hour, hourly: first.hourly, genesisAt: first.genesisAt },
      { hour: 0, hourly: "4566.210045", genesisAt: new Date(T0 + 1234).toISOString() },
    );

    const at = async (ms: number) => {
      clock.set(T0 + 1234 + ms);
      const view = await tc.client().tokenEmission();
      return [view.hour, view.hourly];
    };
    // Year 1's last hour takes the year's remainder; year 2 is 12.386 % less.
    assert.deepEqual(await at(8759 * MS_PER_HOUR), [8759, "4566.215845"]);
    assert.deepEqual(await at(8760 * MS_PER_HOUR - 1), [8759, "4566.215845"]);
    assert.deepEqual(await at(YEAR_MS), [8760, "4000.627336"]);

    tc = await tc.restart();
    const restarted = await tc.client().tokenEmission();
    assert.equal(restarted.genesisAt, new Date(T0 + 1234).toISOString());
    assert.deepEqual([restarted.hour, restarted.hourly], [8760, "4000.627336"]);
    assert.deepEqual(await at(20 * YEAR_MS - 1), [175_199, "370.199441"]);
    assert.deepEqual(await at(20 * YEAR_MS), [175_200, "0.000000"]);

    assertError(
      await httpRequest(tc.url, "GET", "/v1/token/emission?hour=3"),
      400,
      "VALIDATION_FAILED",
    );
  });

  test("a configured genesis: nothing before it, nothing after the twentieth year", async (t) => {
    const clock = new ManualClock(T0);
    const tc = await db.startCoordinator({
      clock,
      config: { genesisAtMs: T0 + 2 * MS_PER_HOUR + 1 },
    });
    t.after(() => tc.close());
    const view = await tc.client().tokenEmission();
    assert.deepEqual(
      { hour: view.hour, hourly: view.hourly, genesisAt: view.genesisAt },
      { hour: -3, hourly: "0.000000", genesisAt: "2026-01-01T02:00:00.001Z" },
    );
    clock.set(T0 + 2 * MS_PER_HOUR + 1);
    assert.equal((await tc.client().tokenEmission()).hourly, "4566.210045");
    clock.set(T0 + 2 * MS_PER_HOUR + 1 + 25 * YEAR_MS);
    assert.deepEqual((await tc.client().tokenEmission()).hourly, "0.000000");

    const openapi = (await httpRequest(tc.url, "GET", "/v1/openapi.json")).json as {
      paths: Record<string, Record<string, { tags?: string[]; security?: unknown }>>;
    };
    const documented = openapi.paths["/v1/token/emission"]?.["get"];
    assert.deepEqual([documented?.tags, documented?.security], [["token"], undefined]);
  });
});

describe("tandem token emission", () => {
  test("prints the 20 years and this hour, or the API's JSON with --json", async (t) => {
    const tc = await startTestCoordinator({
      database: "sqlite",
      config: { genesisAtMs: Date.now() - YEAR_MS - 5 * MS_PER_HOUR },
    });
    const home = await mkdtemp(join(tmpdir(), "tandem-cli-"));
    t.after(async () => {
      await tc.close();
      await rm(home, { recursive: true, force: true });
    });
    const tandem = async (args: string[]) => {
      const cli = spawnTandem(args, { TANDEM_URL: tc.url, TANDEM_HOME: home });
      const code = await cli.exited;
      return { code, stdout: cli.stdout.join("\n"), stderr: cli.stderr.join("\n") };
    };

    const table = await tandem(["token", "emission"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^YEAR +TOTAL \(TDM\)\n1 +40000000\.000000\n2 +35045495\.466470\n/);
    assert.match(table.stdout, /\n20 +3242888\.663112\n/);
    assert.match(table.stdout, /\nhour: +8765 since genesis\nthis hour: +4000\.627336 TDM$/);

    const json = await tandem(["token", "emission", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const view = EmissionView.parse(JSON.parse(json.stdout));
    assert.deepEqual(view, await tc.client().tokenEmission());
  });

  test("a genesis before 1970, after 9999 or not whole is refused at start, naming the field", async () => {
    for (const genesisAtMs of [-1, 253_402_300_800_000, 1.5])
      await assert.rejects(
        startTestCoordinator({ database: "sqlite", config: { genesisAtMs } }),
        /invalid coordinator config: genesisAtMs: /,
      );
  });

  test("tandem coordinator refuses a --genesis-at that is not a UTC time", async () => {
    for (const value of ["2026-02-30T00:00:00Z", "yesterday", "2026-01-01T00:00:00+02:00"]) {
      const cli = spawnTandem(["coordinator", "--port", "0", "--genesis-at", value], {
        TANDEM_HOME: join(tmpdir(), "tandem-never-made"),
      });
      assert.equal(await cli.exited, 1, value);
      assert.match(cli.stderr.join("\n"), /--genesis-at must be a UTC time such as 2026-01-01/);
    }
  });
});
