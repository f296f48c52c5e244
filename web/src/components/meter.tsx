/** A fraction 0..1 as a small horizontal bar; the percentage is its accessible name. */
export function Meter({ fraction }: { fraction: number }) {
  const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  return (
    <span className="meter" role="img" aria-label={`${pct} %`}>
      <span className="meter-fill" style={{ width: `${pct}%` }} />
    </span>
  );
}
