import type { FastifyRequest } from "fastify";
import type { Clock } from "../../core/clock.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { Role } from "../../protocol/accounts.ts";
import {
  DEVICE_AUTH_SCHEME,
  parseDeviceAuthorization,
  verifyDeviceAuthorization,
} from "../../protocol/device-auth.ts";
import type { AccountRegistry, Principal } from "../registry/accounts.ts";
import type { DeviceRegistry } from "../registry/devices.ts";

/** A device that signed this request with its own key (protocol/device-auth.ts). */
export interface DeviceCaller {
  deviceId: string;
  nodeId: string;
  accountId: string;
  publicKey: string;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The caller, when a valid `Authorization: Bearer <api key>` came with the request. */
    principal: Principal | undefined;
    /** An Authorization header came that names no live key (answered 401 by `admit`). */
    keyRefused: boolean;
    /** The device, when a valid `Authorization: Device …` signature came with the request. */
    device: DeviceCaller | undefined;
  }
  interface FastifyContextConfig {
    /** Roles of which a caller must hold one (admins hold every role); absent on public routes. */
    roles?: readonly Role[];
    /** The route takes a device's own signature (`request.device`); every other route refuses it. */
    device?: boolean;
  }
}

/*
 * Who may call what, in three steps of Fastify's lifecycle (onRequest → preParsing → parsing →
 * validation → handler):
 *
 * 1. onRequest, app level: `identifyCaller` reads the bearer key and notes its principal, or a
 *    device's signature and notes the device, or that the credential was refused. It throws
 *    nothing, so the next step counts every request.
 * 2. onRequest, route level: @fastify/rate-limit adds its hook to each route, and Fastify runs a
 *    route's own hooks after the app's, so the limiter sees step 1's outcome. It keys on
 *    `rateLimitKey`: the account of a valid key, else the IP. Made-up keys share their IP's
 *    budget instead of getting a fresh one each.
 * 3. preParsing: `admit` answers 401 for a refused key on any route, then checks the route's
 *    declared `config.roles`, all before the body is read or validated: an anonymous or
 *    wrong-role caller learns nothing of a route's schema. A device credential is refused on
 *    every route that does not declare `config.device`: it can do only what a device does.
 *    Handlers take the caller from `callerOf`.
 */

/** Step 1: notes the caller (`principal`) or a refused key (`keyRefused`); never throws. */
export async function identifyCaller(
  request: FastifyRequest,
  peers: { accounts: AccountRegistry; devices: DeviceRegistry; clock: Clock },
): Promise<void> {
  const header = request.headers.authorization;
  if (header === undefined) return;
  if (header.startsWith(`${DEVICE_AUTH_SCHEME} `)) {
    request.device = await identifyDevice(request, header, peers);
    if (request.device === undefined) request.keyRefused = true;
    return;
  }
  const { accounts } = peers;
  const match = /^Bearer (\S+)$/.exec(header);
  const principal = match?.[1] === undefined ? undefined : await accounts.authenticate(match[1]);
  if (principal === undefined) request.keyRefused = true;
  else request.principal = principal;
}

async function identifyDevice(
  request: FastifyRequest,
  header: string,
  { devices, clock }: { devices: DeviceRegistry; clock: Clock },
): Promise<DeviceCaller | undefined> {
  const auth = parseDeviceAuthorization(header);
  if (auth === undefined) return undefined;
  const device = await devices.findForConnect(auth.deviceId);
  if (device === undefined || device.status !== "active") return undefined;
  const path = request.url;
  if (!verifyDeviceAuthorization(auth, device.publicKey, request.method, path, clock.now()))
    return undefined;
  return {
    deviceId: auth.deviceId,
    nodeId: device.nodeId,
    accountId: device.accountId,
    publicKey: device.publicKey,
  };
}

/** Step 2: the rate-limit bucket; one account shares a budget across all of its keys. */
export function rateLimitKey(request: FastifyRequest): string {
  if (request.device !== undefined) return `device:${request.device.deviceId}`;
  return request.principal === undefined
    ? `ip:${request.ip}`
    : `account:${request.principal.accountId}`;
}

/** Step 3: a key that is present but wrong is refused even on public routes; then the roles. */
export function admit(request: FastifyRequest): void {
  if (request.keyRefused)
    throw new TandemError(
      ErrorCode.UNAUTHENTICATED,
      request.headers.authorization?.startsWith(`${DEVICE_AUTH_SCHEME} `) === true
        ? "invalid, stale or revoked device signature"
        : "invalid or revoked API key",
    );
  if (request.device !== undefined && request.routeOptions.config.device !== true)
    throw new TandemError(
      ErrorCode.FORBIDDEN,
      "a device credential can only do what a device does (register itself); " +
        "this route needs the supplier's API key",
    );
  const roles = request.routeOptions.config.roles;
  if (roles !== undefined) requireRole(request, roles);
}

/** The caller of a route that declares `config.roles`, already admitted by them. */
export function callerOf(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (principal === undefined || request.routeOptions.config.roles === undefined) {
    throw new TandemError(
      ErrorCode.INTERNAL,
      `${request.method} ${request.routeOptions.url ?? request.url} declares no roles`,
    );
  }
  return principal;
}

/** The caller, who must hold one of `roles` (admins hold every role). */
export function requireRole(request: FastifyRequest, roles: readonly Role[]): Principal {
  const principal = request.principal;
  if (principal === undefined) {
    throw new TandemError(
      ErrorCode.UNAUTHENTICATED,
      "this route needs an API key (Authorization: Bearer <key>)",
    );
  }
  if (principal.roles.includes("admin") || roles.some((r) => principal.roles.includes(r)))
    return principal;
  throw new TandemError(ErrorCode.FORBIDDEN, `this route needs the role ${roles.join(" or ")}`, {
    details: { required: [...roles], held: [...principal.roles] },
  });
}
