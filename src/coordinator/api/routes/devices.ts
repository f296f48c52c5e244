import {
  DeviceIdParams,
  RegisterDeviceRequest,
  RegisterDeviceResponse,
  RevokeDeviceRequest,
  RevokeDeviceResponse,
} from "../../../protocol/devices.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

export function deviceRoutes(app: ZodApp, { devices, clock }: ApiDeps): void {
  app.post(
    "/v1/devices",
    {
      config: { roles: ["supplier"] },
      schema: {
        tags: ["devices"],
        body: RegisterDeviceRequest,
        response: { 200: RegisterDeviceResponse, 201: RegisterDeviceResponse },
      },
    },
    async (request, reply) => {
      const { accountId } = callerOf(request);
      const result = await devices.register(accountId, request.body, clock.now());
      return reply.status(result.created ? 201 : 200).send(result);
    },
  );

  app.post(
    "/v1/devices/:id/revoke",
    {
      config: { roles: ["admin"] },
      schema: {
        tags: ["devices"],
        params: DeviceIdParams,
        body: RevokeDeviceRequest.nullish(),
        response: { 200: RevokeDeviceResponse },
      },
    },
    async (request) => {
      const admin = callerOf(request);
      const reason = request.body?.reason ?? "revoked by an admin";
      const { revokedAtMs } = await devices.revoke(
        request.params.id,
        `account:${admin.accountId}`,
        reason,
        clock.now(),
      );
      return {
        deviceId: request.params.id,
        status: "revoked" as const,
        revokedAt: new Date(revokedAtMs).toISOString(),
      };
    },
  );
}
