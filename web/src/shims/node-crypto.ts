/** Browser stand-in for the one node:crypto export that protocol/ids.ts imports. */
export function randomBytes(size: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(size));
}
