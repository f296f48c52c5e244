import type { ReactNode } from "react";
import { describeError } from "../api.ts";
import type { AsyncState } from "../use-async.ts";

export function Loading({ what }: { what: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      Loading {what}…
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state state-empty">{children}</div>;
}

export function ErrorState({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  return (
    <div className="state state-error" role="alert">
      <p>{describeError(error)}</p>
      {onRetry && (
        <button type="button" className="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** The answer's view once it is there; until then the loading state, or the error with a retry. */
export function Loaded<T>(props: {
  state: AsyncState<T>;
  what: string;
  children: (data: T) => ReactNode;
}) {
  const { state } = props;
  if (state.data !== undefined) return props.children(state.data);
  if (state.error !== undefined) return <ErrorState error={state.error} onRetry={state.reload} />;
  return <Loading what={props.what} />;
}
