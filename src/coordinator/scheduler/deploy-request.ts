/** What a deploy request becomes: the bounds zod cannot check, its stored spec and its row. */
import type { z } from "zod";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { Autoscale, DeployRequest } from "../../protocol/clusters.ts";
import type { ClusterSpec } from "./cluster-store.ts";

type Deploy = z.output<typeof DeployRequest>;

/** Bounds zod cannot check alone: autoscaling is for `batch`, without standbys, nodes in bounds. */
export function checkAutoscale(request: {
  kind?: string | undefined;
  nodes: number;
  shadow?: number | undefined;
  autoscale?: Autoscale | undefined;
}): void {
  const bounds = request.autoscale;
  if (bounds === undefined) return;
  const problem =
    request.kind !== undefined && request.kind !== "batch"
      ? "autoscaling is for batch clusters"
      : (request.shadow ?? 0) > 0
        ? "an autoscaled cluster keeps no standbys (it grows instead)"
        : bounds.min > bounds.max
          ? `autoscale min ${bounds.min} is above max ${bounds.max}`
          : request.nodes < bounds.min || request.nodes > bounds.max
            ? `nodes ${request.nodes} is outside autoscale ${bounds.min}..${bounds.max}`
            : undefined;
  if (problem !== undefined)
    throw new TandemError(ErrorCode.VALIDATION_FAILED, problem, { details: { autoscale: bounds } });
}

/** Secret names are for fixed-size clusters, and never the name of a plain `--env` value. */
export function checkSecretNames(request: Deploy): void {
  const names = request.secretNames;
  if (names === undefined) return;
  const clash = names.filter((name) => request.env?.[name] !== undefined);
  const problem =
    request.autoscale !== undefined
      ? "an autoscaled cluster cannot take sealed secrets yet (its new nodes would need them)"
      : clash.length > 0
        ? `${clash.join(", ")} is both a secret and an --env value`
        : undefined;
  if (problem !== undefined)
    throw new TandemError(ErrorCode.VALIDATION_FAILED, problem, {
      details: { field: "secretNames" },
    });
}

function filtersOf(request: Deploy): Record<string, unknown> {
  const filters: Record<string, unknown> = { ...request };
  for (const key of ["kind", "hours", "command", "env", "image", "autoscale", "secretNames"])
    delete filters[key];
  return filters;
}

/** The spec a deploy stores: what was asked for, as accepted. */
function clusterSpec(request: Deploy, requestHash: string | undefined): ClusterSpec {
  return {
    command: request.command,
    env: request.env ?? {},
    image: request.image ?? null,
    filters: filtersOf(request),
    ...(request.secretNames === undefined ? {} : { secretNames: request.secretNames }),
    ...(request.limits === undefined ? {} : { limits: request.limits }),
    ...(requestHash === undefined ? {} : { requestHash }),
  };
}

/** A deployed cluster's row: `provisioning`, or `running` from now when autoscaled. */
export function clusterRow(
  clusterId: string,
  accountId: string,
  request: Deploy,
  now: number,
  idempotency: { key: string; requestHash: string } | undefined,
) {
  // An autoscaled cluster runs (and bills its nodes) from the start: they idle for tasks.
  const scaled = request.autoscale !== undefined;
  return {
    id: clusterId,
    account_id: accountId,
    kind: request.kind,
    status: scaled ? ("running" as const) : ("provisioning" as const),
    spec: JSON.stringify(clusterSpec(request, idempotency?.requestHash)),
    node_count: request.nodes,
    shadow: request.shadow ?? 0,
    hours: request.hours,
    currency: request.currency,
    idempotency_key: idempotency?.key ?? null,
    created_at: now,
    started_at: scaled ? now : null,
    ends_at: scaled ? now + request.hours * 3_600_000 : null,
    ended_at: null,
    autoscale: scaled ? JSON.stringify(request.autoscale) : null,
  };
}
