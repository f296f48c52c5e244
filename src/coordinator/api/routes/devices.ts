import {
  DeviceIdParams,
  RegisterDeviceRequest,
  RegisterDeviceResponse,
  RevokeDeviceRequest,
  RevokeDeviceResponse,
} from "../../../protocol/devices.ts";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import { callerOf, requireRole } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

export function deviceRoutes(app: ZodApp, { devices, clock }: ApiDeps): void {
  /*
   * Three ways to register, one credential each (two at once are refused):
   * - `enrollmentToken` in the body: a worker's first registration, consuming the token;
   * - `Authorization: Device …`: a registered device re-registering itself (every later start);
   * - a supplier's API key: the supplier's own tools, on a machine that holds the key anyway.
   */
  app.post(
    "/v1/devices",
    {
      config: { device: true },
      schema: {
        tags: ["devices"],
        body: RegisterDeviceRequest,
        response: { 200: RegisterDeviceResponse, 201: RegisterDeviceResponse },
      },
    },
    async (request, reply) => {
      const { body } = request;
      const token = body.enrollmentToken;
      const { device, principal } = request;
      if (token !== undefined && (device !== undefined || principal !== undefined))
        throw new TandemError(
          ErrorCode.VALIDATION_FAILED,
          "send either an enrollment token or an Authorization header, not both",
        );
      let result;
      if (device !== undefined) {
        if (body.publicKey !== device.publicKey)
          throw new TandemError(
            ErrorCode.FORBIDDEN,
            "a device may only re-register itself; a new device needs an enrollment token",
          );
        result = await devices.register(device.accountId, body, clock.now());
      } else if (token !== undefined) {
        result = await devices.enroll(token, body, clock.now());
      } else {
        if (principal === undefined)
          throw new TandemError(
            ErrorCode.UNAUTHENTICATED,
            "registering a device needs an enrollment token (`tandem worker enroll-token`), " +
              "the device's own signature, or a supplier API key",
          );
        const { accountId } = requireRole(request, ["supplier"]);
        result = await devices.register(accountId, body, clock.now());
      }
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
