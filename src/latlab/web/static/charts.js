// uPlot, loaded once from LatLab's own copy, and the line charts the pages draw with it.
import { ms } from "./api.js";

const vendor = document.querySelector("[data-vendor]").dataset.vendor;
export const { default: uPlot } = await import(`${vendor}/uplot/uPlot.esm.js`);

export const HEIGHT = 280;
const SECOND_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

/** Axes in the page's own colours: uPlot draws dark grey on any background otherwise,
 * which a dark theme cannot read. */
function inked(axes) {
  const style = getComputedStyle(document.body);
  const ink = style.color;
  const line = style.getPropertyValue("--line").trim() || "rgba(128,128,128,0.3)";
  return axes.map((axis) => ({ stroke: ink, grid: { stroke: line }, ticks: { stroke: line }, ...axis }));
}

/** A line chart in `box` over `columns` (x first); `series`: [label, colour, shown]. */
export function lineChart(box, columns, series, { time = true, yLabel = "ms", format = ms } = {}) {
  const lines = series.map(([label, stroke, show = true]) => ({
    label,
    stroke,
    show,
    width: 1.5,
    value: (_, v) => format(v),
  }));
  const chart = new uPlot(
    {
      width: box.clientWidth || 800,
      height: HEIGHT,
      scales: { x: { time } },
      // Seconds of a run: whole steps, never 0.05.
      axes: inked([time ? {} : { incrs: SECOND_STEPS, label: "s" }, { label: yLabel }]),
      series: [{}, ...lines],
    },
    columns,
    box,
  );
  new ResizeObserver(() => chart.setSize({ width: box.clientWidth, height: HEIGHT })).observe(box);
  return chart;
}

/** Redraws at most once a frame, however many points arrive meanwhile. */
export function redrawer(draw) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      draw();
    });
  };
}

/** A chart sized to `box` that follows its width: `options` as uPlot takes them. */
export function sizedChart(box, options, data) {
  const axes = inked(options.axes ?? [{}, {}]);
  const chart = new uPlot({ width: box.clientWidth || 800, height: HEIGHT, ...options, axes }, data, box);
  new ResizeObserver(() => chart.setSize({ width: box.clientWidth, height: HEIGHT })).observe(box);
  return chart;
}
