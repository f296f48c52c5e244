import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { StatsSample } from "../../../src/protocol/live.ts";
import { chartStyle, useEffectiveTheme } from "../theme.ts";

export interface ChartSeries {
  label: string;
  value: (sample: StatsSample) => number;
  /** A CSS custom property holding the line colour, e.g. "--chart-1". */
  colorVar: string;
}

/**
 * A small time-series chart of the live network samples, drawn by uPlot (canvas, ~50 kB): cheap to
 * redraw on every sample. The canvas is hidden from assistive technology; `summary` says the same
 * in words.
 */
export function HistoryChart({
  samples,
  series,
  summary,
  height = 180,
}: {
  samples: StatsSample[];
  series: ChartSeries[];
  summary: string;
  height?: number;
}) {
  const container = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | undefined>(undefined);
  const theme = useEffectiveTheme();
  const seriesKey = series.map((s) => s.label).join("|");

  useEffect(() => {
    const element = container.current;
    if (element === null) return;
    const { color, axis } = chartStyle(element);
    const plot = new uPlot(
      {
        width: Math.max(element.clientWidth, 200),
        height,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max * 1.15))] } },
        axes: [axis, { ...axis, size: 44 }],
        series: [
          {},
          ...series.map((s) => ({
            label: s.label,
            stroke: color(s.colorVar),
            width: 2,
            points: { show: false },
          })),
        ],
      },
      [[], ...series.map(() => [])],
      element,
    );
    chart.current = plot;
    const resize = new ResizeObserver(() =>
      plot.setSize({ width: Math.max(element.clientWidth, 200), height }),
    );
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
      chart.current = undefined;
    };
    // Rebuilt only when what it looks like changes; new data goes through setData below.
  }, [theme, height, seriesKey]);

  useEffect(() => {
    chart.current?.setData([
      samples.map((s) => new Date(s.at).getTime() / 1000),
      ...series.map((s) => samples.map(s.value)),
    ]);
  });

  return (
    <figure className="chart">
      <div ref={container} aria-hidden="true" />
      <figcaption className="visually-hidden">{summary}</figcaption>
    </figure>
  );
}
