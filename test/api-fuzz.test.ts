/**
 * The standing API fuzz test (issue 18), on SQLite and PostgreSQL: requests generated from the
 * coordinator's own `/v1/openapi.json` — every operation, with fast-check arbitraries built from
 * each parameter's and body's JSON schema (boundary numbers, amounts at and past their bound,
 * strings at and past their length, huge strings, wrong types, unknown fields, missing fields and
 * bodies), with an admin's, a consumer's or a supplier's key, a bogus key or none. Every answer
 * must be below 500, and a refused (4xx) request must leave every balance and the ledger exactly
 * as they were; the ledger audit must pass at the end.
 *
 * Bounded: `TANDEM_FUZZ_RUNS` requests per database (default 1,000), seeded by `TANDEM_FUZZ_SEED`
 * (default: random). The seed is printed on every run and a failure names it, to replay it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { sql } from "kysely";
import { CURRENCIES } from "../src/core/money.ts";
import { MAX_AMOUNT, MAX_PRICE_PER_HOUR } from "../src/protocol/amounts.ts";
import {
  ManualClock,
  forEachDatabase,
  httpRequest,
  type RawResponse,
  type TestCoordinator,
} from "./support/coordinator.ts";
import { simulatedNetwork } from "./support/simulated-network.ts";
import { availableWorker } from "./support/workers.ts";

const RUNS = Number(process.env.TANDEM_FUZZ_RUNS ?? 1000);
const SEED = Number(process.env.TANDEM_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** The subset of JSON Schema that zod's OpenAPI output uses. */
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  format?: string;
  description?: string;
}

interface Parameter {
  in: "path" | "query" | "header";
  name: string;
  required?: boolean;
  schema: Schema;
}

interface Operation {
  method: string;
  path: string;
  parameters: Parameter[];
  body: Schema | undefined;
}

/**
 * Ids that exist, by prefix, so generated requests also reach past the lookups. Clusters are added
 * as deploys succeed: a generated id is drawn from the list as it is when the request is made.
 */
type Known = Record<"acct" | "node" | "dev" | "clu", string[]>;

const HUGE = "A".repeat(300 * 1024);
const MONEY_PATHS = /^\/v1\/(wallet|clusters|quotes|search|nodes\/\{id\}\/price)/;

const AMOUNTS = [
  "0",
  "0.000001",
  "1",
  "12.5",
  "-1",
  "1.0000001",
  "1e3",
  " 1",
  "0x10",
  ".5",
  MAX_PRICE_PER_HOUR,
  "1000.000001",
  MAX_AMOUNT,
  "1000000000.000001",
  "9223372036854",
  "9223372036854.775807",
  "9223372036854.775808",
  "99999999999999999999999999999999",
];

/** Numbers at and just past a schema's bounds, and some that break any bound. */
function numberBoundaries(s: Schema): number[] {
  const out = [0, -1, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, -1e308, 0.5];
  for (const bound of [s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum]) {
    if (bound !== undefined) out.push(bound, bound - 1, bound + 1, bound + 0.5);
  }
  return out;
}

function stringFor(s: Schema, known: Known, lean: boolean): fc.Arbitrary<string> {
  const max = s.maxLength ?? 64;
  const edges = fc.constantFrom("", "x".repeat(max), "x".repeat(max + 1), HUGE);
  if (s.description?.includes("decimal string")) {
    if (lean) return fc.constantFrom("1", "12.5", MAX_PRICE_PER_HOUR, MAX_AMOUNT);
    return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...AMOUNTS) }, edges);
  }
  if (s.description?.includes("TDM | USDC")) {
    if (lean) return fc.constantFrom(...CURRENCIES);
    return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...CURRENCIES) }, fc.string());
  }
  let matching: fc.Arbitrary<string> = fc.string({ maxLength: Math.min(max, 40) });
  if (s.pattern !== undefined) {
    const prefix = /^\^(acct|node|dev|clu)_/.exec(s.pattern)?.[1] as keyof Known | undefined;
    try {
      matching = fc.stringMatching(new RegExp(s.pattern, "u")).map((text) => text.slice(0, max));
    } catch {
      // A pattern fast-check cannot generate from: free strings then.
    }
    if (prefix !== undefined) {
      const ids = known[prefix];
      const fallback = matching;
      matching = fc
        .tuple(fc.nat(), fallback)
        .map(([i, generated]) => (ids.length === 0 ? generated : ids[i % ids.length]!));
      matching = fc.oneof(matching, fallback);
    }
  }
  if (s.format === "date-time") matching = fc.date().map((d) => (isNaN(+d) ? "" : d.toISOString()));
  if (lean) return matching;
  return fc.oneof({ weight: 8, arbitrary: matching }, edges, fc.string({ unit: "binary" }));
}

/**
 * Values that mostly fit `s`, with boundary and out-of-bound ones among them; `lean` ones fit it
 * with as little as it allows (required fields only, small numbers), to get past validation.
 */
function valueFor(s: Schema, known: Known, lean = false, depth = 0): fc.Arbitrary<unknown> {
  const variants = s.anyOf ?? s.oneOf ?? s.allOf;
  if (variants !== undefined && variants.length > 0)
    return fc.oneof(...variants.map((v) => valueFor(v, known, lean, depth + 1)));
  if (s.enum !== undefined)
    return lean ? fc.constantFrom(...s.enum) : fc.oneof(fc.constantFrom(...s.enum), fc.string());
  if (s.const !== undefined) return fc.constant(s.const);
  const types = Array.isArray(s.type) ? s.type : s.type === undefined ? [] : [s.type];
  if (types.length > 1)
    return fc.oneof(...types.map((type) => valueFor({ ...s, type }, known, lean, depth + 1)));
  const type: string = types[0] ?? "any";
  switch (type) {
    case "string":
      return stringFor(s, known, lean);
    case "integer":
      if (lean) {
        const least = Math.max(s.minimum ?? 0, 0);
        return fc.integer({ min: least, max: Math.min(s.maximum ?? least + 2, least + 2) });
      }
      return fc.oneof(
        {
          weight: 3,
          arbitrary: fc.integer({
            min: Math.max(s.minimum ?? -1e6, -(2 ** 31)),
            max: Math.min(s.maximum ?? 1e6, 2 ** 31),
          }),
        },
        fc.constantFrom(...numberBoundaries(s)),
      );
    case "number":
      return fc.oneof(
        {
          weight: 3,
          arbitrary: fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true }),
        },
        fc.constantFrom(...numberBoundaries(s)),
      );
    case "boolean":
      return fc.boolean();
    case "null":
      return fc.constant(null);
    case "array":
      return fc.array(
        s.items === undefined ? fc.jsonValue() : valueFor(s.items, known, lean, depth + 1),
        {
          minLength: s.minItems ?? 0,
          maxLength: Math.min(s.maxItems ?? 4, lean ? (s.minItems ?? 0) + 1 : 4),
        },
      );
    case "object": {
      if (depth > 6) return fc.constant({});
      const properties = s.properties ?? {};
      const shape: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, property] of Object.entries(properties))
        if (!lean || s.required?.includes(name) === true)
          shape[name] = valueFor(property, known, lean, depth + 1);
      const record = fc.record(shape, { requiredKeys: s.required ?? [] });
      if (lean || typeof s.additionalProperties !== "object") return record;
      const extra = fc.dictionary(
        fc.string({ maxLength: 12 }),
        valueFor(s.additionalProperties, known, lean, depth + 1),
        { maxKeys: 3 },
      );
      return fc.tuple(record, extra).map(([a, b]) => ({ ...b, ...a }));
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A value that fits its schema, or one with a field of the wrong type, an unknown or a missing one. */
function bodyFor(s: Schema, known: Known): fc.Arbitrary<unknown> {
  const valid = valueFor(s, known);
  const mutated = fc
    .tuple(
      valid,
      fc.nat(),
      fc.jsonValue({ maxDepth: 1 }),
      fc.constantFrom("wrong", "unknown", "drop"),
    )
    .map(([value, pick, junk, how]) => {
      if (value === null || typeof value !== "object" || Array.isArray(value)) return junk;
      const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      const keys = Object.keys(copy);
      const key = keys[pick % Math.max(keys.length, 1)];
      if (how === "unknown" || key === undefined) copy[`extra${pick % 7}`] = junk;
      else if (how === "wrong")
        copy[key] = typeof copy[key] === "string" ? pick : JSON.stringify(junk);
      else delete copy[key];
      return copy;
    });
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 3, arbitrary: valueFor(s, known, true) },
    { weight: 3, arbitrary: mutated },
    fc.constant(undefined),
    fc.constantFrom(null, [], "text", 1, HUGE),
  );
}

type Who = "admin" | "consumer" | "supplier" | "bogus" | "none";

interface Request {
  op: string;
  method: string;
  path: string;
  who: Who;
  headers: Record<string, string>;
  body: unknown;
}

function requestFor(op: Operation, known: Known): fc.Arbitrary<Request> {
  const pathParams = op.parameters.filter((p) => p.in === "path");
  const queryParams = op.parameters.filter((p) => p.in === "query");
  const headerParams = op.parameters.filter((p) => p.in === "header");
  const asText = (v: unknown) => (typeof v === "string" ? v : (JSON.stringify(v) ?? ""));
  const param = (p: Parameter) => valueFor(p.schema, known).map(asText);
  return fc
    .record({
      path: fc.tuple(...pathParams.map(param)),
      query: fc.tuple(
        ...queryParams.map((p) => fc.option(param(p), { freq: 2, nil: undefined })),
        fc.oneof(
          { weight: 6, arbitrary: fc.constant(undefined) },
          fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.string()),
        ),
      ),
      headers: fc.tuple(
        ...headerParams.map((p) => fc.option(param(p), { freq: 8, nil: undefined })),
      ),
      who: fc.constantFrom<Who>("admin", "consumer", "supplier", "bogus", "none"),
      body: op.body === undefined ? fc.constant(undefined) : bodyFor(op.body, known),
    })
    .map(({ path, query, headers, who, body }) => {
      let url = op.path;
      pathParams.forEach((p, i) => {
        url = url.replace(`{${p.name}}`, encodeURIComponent(path[i] ?? "") || "x");
      });
      const search = new URLSearchParams();
      queryParams.forEach((p, i) => {
        const value = query[i] as string | undefined;
        if (value !== undefined) search.set(p.name, value);
      });
      const unknown = query[queryParams.length] as [string, string] | undefined;
      if (unknown !== undefined) search.set(unknown[0], unknown[1]);
      const text = search.toString();
      const headerValues: Record<string, string> = {};
      headerParams.forEach((p, i) => {
        const value = headers[i];
        // Header values must be Latin-1 without line breaks to be sent at all.
        if (value !== undefined && /^[\x20-\x7e]*$/.test(value)) headerValues[p.name] = value;
      });
      return {
        op: `${op.method} ${op.path}`,
        method: op.method,
        path: text === "" ? url : `${url}?${text}`,
        who,
        headers: headerValues,
        body,
      };
    });
}

function operationsOf(doc: {
  paths: Record<string, Record<string, { parameters?: Parameter[]; requestBody?: unknown }>>;
}): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const content = (op.requestBody as { content?: Record<string, { schema?: Schema }> })
        ?.content;
      ops.push({
        method: method.toUpperCase(),
        path,
        parameters: op.parameters ?? [],
        body: content?.["application/json"]?.schema,
      });
    }
  }
  return ops;
}

/** Every balance and the number of ledger transactions, as one comparable text. */
async function moneyState(tc: TestCoordinator): Promise<string> {
  const db = tc.coordinator.store.db;
  const [balances, transactions] = await Promise.all([
    sql<{ account: string; currency: string; balance: string }>`SELECT account, currency,
      CAST(balance AS TEXT) AS balance FROM ledger_balances ORDER BY account, currency`.execute(db),
    sql<{ n: string }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ledger_transactions`.execute(db),
  ]);
  return JSON.stringify([transactions.rows[0]?.n, balances.rows]);
}

function describeRequest(r: Request, answer?: RawResponse): string {
  const body = JSON.stringify(r.body) ?? "(none)";
  const shown = body.length > 300 ? `${body.slice(0, 300)}… (${body.length} chars)` : body;
  const got = answer === undefined ? "" : ` → ${answer.status} ${answer.text.slice(0, 300)}`;
  return `${r.method} ${r.path.slice(0, 300)} as ${r.who} ${JSON.stringify(r.headers)} ${shown}${got}`;
}

forEachDatabase("API fuzz", (db) => {
  test(`${RUNS} generated requests: never a 5xx, never a balance moved by a refused one`, async (t) => {
    t.diagnostic(`TANDEM_FUZZ_SEED=${SEED} TANDEM_FUZZ_RUNS=${RUNS}`);
    // Time stands still and the scheduler does not tick, so only the requests move money; two
    // verified workers make deploys, quotes, prices and extensions reach the ledger. (Their
    // devices are not offered to the revoke route: that would end the capacity.)
    const tc = await db.startCoordinator({
      clock: new ManualClock(),
      config: {
        pricingMode: "market",
        livenessSweepMs: 0,
        schedulerTickMs: 86_400_000,
      },
    });
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);
    const supplier = await tc.signUp(["supplier"]);
    const admin = tc.client(tc.adminKey);
    await admin.deposit({ accountId: consumer.accountId, currency: "USDC", amount: "1000" });
    await admin.deposit({ accountId: consumer.accountId, currency: "TDM", amount: "1000" });
    const known: Known = {
      acct: [consumer.accountId, supplier.accountId],
      node: [],
      dev: [],
      clu: [],
    };
    for (const zone of ["eu-west-a", "eu-west-b"]) {
      const worker = await availableWorker(tc, supplier.apiKey, zone);
      t.after(() => worker.socket.terminate());
      known.node.push(worker.nodeId);
    }
    const doc = (await httpRequest(tc.url, "GET", "/v1/openapi.json")).json as Parameters<
      typeof operationsOf
    >[0];
    const operations = operationsOf(doc);
    assert.ok(operations.length >= 30, `${operations.length} operations in the OpenAPI document`);
    const keys: Record<Who, string | undefined> = {
      admin: tc.adminKey,
      consumer: consumer.apiKey,
      supplier: supplier.apiKey,
      bogus: "tdm_bogus_key_0000000000000000000000",
      none: undefined,
    };
    // Operations that move money or price it are drawn three times as often.
    const requests = fc.oneof(
      ...operations.map((op) => ({
        weight: MONEY_PATHS.test(op.path) && op.method !== "GET" ? 3 : 1,
        arbitrary: requestFor(op, known),
      })),
    );
    const seen = new Map<string, number>();
    const statuses = new Map<string, number>();

    // Nothing moves money here but the requests themselves (no cluster runs): the state read after
    // one request is the state before the next.
    let state = await moneyState(tc);
    await fc.assert(
      fc.asyncProperty(requests, async (r) => {
        const apiKey = keys[r.who];
        const answer = await httpRequest(tc.url, r.method, r.path, {
          ...(apiKey === undefined ? {} : { apiKey }),
          headers: r.headers,
          ...(r.body === undefined ? {} : { body: r.body }),
        });
        seen.set(r.op, (seen.get(r.op) ?? 0) + 1);
        if (r.op === "POST /v1/clusters" && answer.status === 201)
          known.clu.push((answer.json as { id: string }).id);
        const k = `${Math.floor(answer.status / 100)}xx`;
        statuses.set(k, (statuses.get(k) ?? 0) + 1);
        assert.ok(answer.status < 500, `a ${answer.status}: ${describeRequest(r, answer)}`);
        const after = await moneyState(tc);
        if (answer.status >= 400) {
          assert.equal(
            after,
            state,
            `a refused request moved money: ${describeRequest(r, answer)}`,
          );
        }
        state = after;
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );

    const audit = await httpRequest(tc.url, "GET", "/v1/admin/ledger-audit", {
      apiKey: tc.adminKey,
    });
    assert.equal(audit.status, 200, audit.text);
    assert.equal((audit.json as { ok: boolean }).ok, true, audit.text);
    t.diagnostic(
      `answers: ${[...statuses].map(([k, n]) => `${n} ${k}`).join(", ")}; ` +
        `operations reached: ${seen.size} of ${operations.length}; clusters deployed: ${known.clu.length}`,
    );
  });

  // Found by this test (seed 1921623701): a rank past PostgreSQL's 32-bit column answered 500.
  test("a log query's rank past any cluster's ranks is VALIDATION_FAILED", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["true"],
    });
    const logs = (query: string) =>
      httpRequest(s.net.url, "GET", `/v1/clusters/${cluster.id}/logs?${query}`, {
        apiKey: s.consumer.apiKey,
      });
    for (const rank of ["9007199254740990", "2147483648", "256"]) {
      const answer = await logs(`rank=${rank}`);
      assert.equal(answer.status, 400, `rank ${rank}: ${answer.status} ${answer.text}`);
      assert.equal((answer.json as { error: { code: string } }).error.code, "VALIDATION_FAILED");
    }
    assert.equal((await logs("rank=255")).status, 200);
  });
});
