import type { ReactNode } from "react";
import { historyState, navigate } from "../router.tsx";

/** Cursors of the pages before this one ("" = the first page), oldest first, from history state. */
export function previousCursors(): string[] {
  const state = historyState();
  if (typeof state === "object" && state !== null && "previous" in state) {
    const { previous } = state;
    if (Array.isArray(previous) && previous.every((c) => typeof c === "string")) return previous;
  }
  return [];
}

/**
 * Previous / Next for cursor paging: the page's cursor is in the URL (a deep link), the cursors
 * of earlier pages ride in the history entry's state, so Previous needs no server support.
 */
export function Pager(props: {
  cursor: string | undefined;
  nextCursor: string | null;
  /** The URL of the page at `cursor` (undefined: the first page). */
  urlFor: (cursor: string | undefined) => string;
  children?: ReactNode;
}) {
  const previous = previousCursors();
  return (
    <nav className="pager" aria-label="Pages">
      <button
        type="button"
        className="button"
        disabled={previous.length === 0}
        onClick={() =>
          navigate(props.urlFor(previous.at(-1)), { state: { previous: previous.slice(0, -1) } })
        }
      >
        ← Previous
      </button>
      {props.children}
      <button
        type="button"
        className="button"
        disabled={props.nextCursor === null}
        onClick={() =>
          navigate(props.urlFor(props.nextCursor ?? undefined), {
            state: { previous: [...previous, props.cursor ?? ""] },
          })
        }
      >
        Next →
      </button>
    </nav>
  );
}
