import { z } from "zod";
import { publicKeyDefect } from "./ed25519-keys.ts";
import { EnrollmentToken } from "./enrollment.ts";
import { HardwareReport } from "./hardware.ts";
import { IdPrefix, idSchema } from "./ids.ts";
import { freeText, slug } from "./text.ts";

/**
 * An Ed25519 public key: the 32 raw bytes, base64url (the `x` of its JWK), canonical and of full
 * order (ed25519-keys.ts says why).
 */
export const PublicKey = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, "expected a base64url Ed25519 key")
  .superRefine((key, ctx) => {
    const defect = publicKeyDefect(key);
    if (defect !== undefined) ctx.addIssue({ code: "custom", message: `refused key: ${defect}` });
  });
/** An Ed25519 signature: 64 raw bytes, base64url. */
export const Signature = z.string().regex(/^[A-Za-z0-9_-]{86}$/, "expected a base64url signature");

const Location = slug(64);

/** What the device signs when it registers: proves the report comes from the key's holder. */
export const DeviceRegistration = z.strictObject({
  publicKey: PublicKey,
  region: Location,
  zone: Location,
  hardware: HardwareReport,
});
export type DeviceRegistration = z.infer<typeof DeviceRegistration>;

/**
 * The signed registration, plus (outside what is signed) the single-use enrollment token a worker
 * registers its device with the first time, when it comes without the supplier's API key.
 */
export const RegisterDeviceRequest = DeviceRegistration.extend({
  signature: Signature,
  enrollmentToken: EnrollmentToken.optional(),
});
export type RegisterDeviceRequest = z.infer<typeof RegisterDeviceRequest>;

export const RegisterDeviceResponse = z.strictObject({
  deviceId: idSchema(IdPrefix.device),
  nodeId: idSchema(IdPrefix.node),
  created: z.boolean(),
});
export type RegisterDeviceResponse = z.infer<typeof RegisterDeviceResponse>;

export const DeviceIdParams = z.strictObject({ id: idSchema(IdPrefix.device) });

export const RevokeDeviceRequest = z.strictObject({ reason: freeText(500).optional() });

export const RevokeDeviceResponse = z.strictObject({
  deviceId: idSchema(IdPrefix.device),
  status: z.literal("revoked"),
  revokedAt: z.iso.datetime(),
});
export type RevokeDeviceResponse = z.infer<typeof RevokeDeviceResponse>;
