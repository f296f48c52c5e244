import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { UptimeDays } from "../../../src/protocol/nodes.ts";
import { chartStyle, useEffectiveTheme } from "../theme.ts";

const HEIGHT = 160;

/**
 * A node's uptime per day over 30 days as bars (uPlot's bar paths, like the history charts); days
 * before the node registered are gaps. The canvas is hidden from assistive technology; the
 * caption says the same in words.
 */
export function UptimeChart({ data }: { data: UptimeDays }) {
  const container = useRef<HTMLDivElement>(null);
  const theme = useEffectiveTheme();
  const key = JSON.stringify(data.days);

  useEffect(() => {
    const element = container.current;
    if (element === null) return;
    const { color, axis } = chartStyle(element);
    const days = JSON.parse(key) as UptimeDays["days"];
    const plot = new uPlot(
      {
        width: Math.max(element.clientWidth, 200),
        height: HEIGHT,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: [0, 100] } },
        axes: [axis, { ...axis, size: 56, values: (_u, ticks) => ticks.map((v) => `${v} %`) }],
        series: [
          {},
          {
            label: "Uptime",
            fill: color("--chart-2"),
            stroke: color("--chart-2"),
            paths: uPlot.paths.bars!({ size: [0.7, 24] }),
            points: { show: false },
          },
        ],
      },
      [
        days.map((d) => new Date(d.from).getTime() / 1000 + 43_200),
        days.map((d) => (d.uptime === null ? null : Math.round(d.uptime * 1000) / 10)),
      ],
      element,
    );
    const resize = new ResizeObserver(() =>
      plot.setSize({ width: Math.max(element.clientWidth, 200), height: HEIGHT }),
    );
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [theme, key]);

  const known = data.days.filter((d) => d.uptime !== null);
  const full = known.filter((d) => d.uptime === 1).length;
  const worst = known.reduce((min, d) => Math.min(min, d.uptime ?? 1), 1);
  const summary =
    known.length === 0
      ? "No uptime recorded yet."
      : `${known.length} days recorded: ${full} fully online; the worst day ${Math.round(worst * 1000) / 10} %.`;
  return (
    <figure className="chart" data-testid="uptime-chart">
      <div ref={container} aria-hidden="true" />
      <figcaption className="card-detail">{summary}</figcaption>
    </figure>
  );
}
