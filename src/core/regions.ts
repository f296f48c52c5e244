/**
 * Where nodes are. A supplier declares one region and one zone of it; consumers filter by region
 * and spread a cluster across zones. Every region has the same three zones `<region>-a|b|c`, so a
 * zone id also names its region.
 */

export const REGION_IDS = [
  "us-east",
  "us-west",
  "us-central",
  "ca-central",
  "eu-west",
  "eu-central",
  "eu-north",
  "ap-southeast",
  "ap-northeast",
  "ap-south",
  "sa-east",
  "af-south",
  "me-central",
] as const;
export type RegionId = (typeof REGION_IDS)[number];

/** One region and its zones. */
export interface Region {
  id: RegionId;
  /** Display name. */
  name: string;
  /** Zone ids, `<region>-a|b|c`. */
  zones: readonly string[];
}

const NAMES: Readonly<Record<RegionId, string>> = {
  "us-east": "US East",
  "us-west": "US West",
  "us-central": "US Central",
  "ca-central": "Canada Central",
  "eu-west": "Europe West",
  "eu-central": "Europe Central",
  "eu-north": "Europe North",
  "ap-southeast": "Asia Pacific Southeast",
  "ap-northeast": "Asia Pacific Northeast",
  "ap-south": "Asia Pacific South",
  "sa-east": "South America East",
  "af-south": "Africa South",
  "me-central": "Middle East Central",
};

export const REGIONS: readonly Region[] = Object.freeze(
  REGION_IDS.map((id) =>
    Object.freeze({
      id,
      name: NAMES[id],
      zones: Object.freeze(["a", "b", "c"].map((z) => `${id}-${z}`)),
    }),
  ),
);

const ZONES = new Map<string, ReadonlySet<string>>(REGIONS.map((r) => [r.id, new Set(r.zones)]));

export function isKnownRegion(id: string): id is RegionId {
  return ZONES.has(id);
}

/** `region`'s zones, or undefined for a region the network does not know. */
export function zonesOf(region: string): readonly string[] | undefined {
  return REGIONS.find((r) => r.id === region)?.zones;
}

/** True when `zone` is one of `region`'s zones. */
export function isKnownZone(region: string, zone: string): boolean {
  return ZONES.get(region)?.has(zone) ?? false;
}
