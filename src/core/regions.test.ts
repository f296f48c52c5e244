import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { REGIONS, REGION_IDS, isKnownRegion, isKnownZone } from "./regions.ts";

describe("regions", () => {
  it("lists each region once with three zones a, b, c", () => {
    assert.deepEqual(
      REGIONS.map((r) => r.id),
      [...REGION_IDS],
    );
    assert.equal(new Set(REGION_IDS).size, REGION_IDS.length);
    assert.equal(REGIONS.length, 13);
    for (const r of REGIONS) {
      assert.deepEqual(r.zones, [`${r.id}-a`, `${r.id}-b`, `${r.id}-c`]);
      assert.ok(r.name.length > 0);
    }
  });

  it("is frozen", () => {
    assert.ok(Object.isFrozen(REGIONS));
    assert.ok(REGIONS.every((r) => Object.isFrozen(r) && Object.isFrozen(r.zones)));
  });

  it("knows its regions and nothing else", () => {
    assert.ok(isKnownRegion("us-east"));
    assert.ok(isKnownRegion("me-central"));
    for (const id of ["", "US-EAST", "us-east-a", "eu", "mars-north", " us-east"]) {
      assert.equal(isKnownRegion(id), false, id);
    }
  });

  it("knows a zone only within its own region", () => {
    assert.ok(isKnownZone("eu-west", "eu-west-b"));
    assert.ok(isKnownZone("ap-south", "ap-south-c"));
    assert.equal(isKnownZone("eu-west", "eu-west-d"), false);
    assert.equal(isKnownZone("eu-west", "eu-central-a"), false);
    assert.equal(isKnownZone("eu-west", "a"), false);
    assert.equal(isKnownZone("nowhere", "nowhere-a"), false);
  });
});
