import type { FastifyRequest } from "fastify";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { Role } from "../../protocol/accounts.ts";
import type { AccountRegistry, Principal } from "../registry/accounts.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller, when a valid `Authorization: Bearer <api key>` came with the request. */
    principal: Principal | undefined;
  }
}

/** Reads the bearer key; a key that is present but wrong is refused even on public routes. */
export async function authenticateRequest(
  request: FastifyRequest,
  accounts: AccountRegistry,
): Promise<void> {
  const header = request.headers.authorization;
  if (header === undefined) return;
  const match = /^Bearer (\S+)$/.exec(header);
  const principal = match?.[1] === undefined ? undefined : await accounts.authenticate(match[1]);
  if (principal === undefined)
    throw new TandemError(ErrorCode.UNAUTHENTICATED, "invalid or revoked API key");
  request.principal = principal;
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
