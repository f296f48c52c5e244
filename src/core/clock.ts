/** Time as a port: production reads the system clock, tests hand in one they move by hand. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}
