import { z } from "zod";

/**
 * `?limit=` of the lists an account reads about itself (clusters, a cluster's tasks, API keys,
 * enrollment tokens): 1 to 200 items a page, 50 when not given. Each list's query adds its own
 * `cursor` (the previous page's `nextCursor`) and says its order.
 */
export const PageLimit = z.coerce.number().int().min(1).max(200).default(50);

/** A page of `item`: `nextCursor` is null on the last page, else the `cursor` for the next. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.strictObject({
    items: z.array(item),
    /** Null on the last page; else pass it as `cursor` for the next one. */
    nextCursor: z.string().nullable(),
  });
}
