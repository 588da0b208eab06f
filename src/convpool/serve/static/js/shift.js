// Shift: shift the input circularly and compare each layer's output with its unshifted output.
import { api, drawMap, el, fmt } from "./common.js";
import { state } from "./state.js";

const $ = (id) => document.getElementById(id);
const COLOURS = ["#2456a6", "#7b2cbf", "#e8590c", "#2b8a3e", "#c2255c", "#0b7285"];
const SVG = "http://www.w3.org/2000/svg";
let seq = 0;
let timer = null;
let visible = false;

function input() {
  const name = $("shift-preset").value;
  return state.presets.inputs[name].grid;
}

function setRange() {
  const g = input();
  const n = $("shift-axis").value === "horizontal" ? g[0].length : g.length;
  const m = Math.max(1, Math.min(16, n - 1));
  const s = $("shift-slider");
  s.min = -m;
  s.max = m;
  if (Math.abs(Number(s.value)) > m) s.value = 0;
}

export async function refreshShift() {
  if (!visible) return;
  const mine = ++seq;
  const shift = Number($("shift-slider").value);
  $("shift-value").textContent = shift;
  const body = { input: input(), shift, axis: $("shift-axis").value };
  let res;
  try {
    res = await api("/api/shift", body);
  } catch (err) {
    if (mine !== seq) return;
    $("shift-error").textContent = err.message;
    $("shift-error").hidden = false;
    return;
  }
  if (mine !== seq) return;
  $("shift-error").hidden = true;
  render(res);
}

function render(res) {
  const w = res.shifted_input[0].length;
  drawMap($("shift-input"), res.shifted_input, Math.min(240, Math.max(120, w * 6)));
  drawChart(res);
  const cards = $("shift-layers");
  cards.replaceChildren();
  res.layers.forEach((layer, k) => {
    const card = el("div", { class: "card", "data-layer": layer.name });
    const sw = el("span", { class: "swatch" });
    sw.style.background = COLOURS[k % COLOURS.length];
    const h = el("h3");
    h.append(sw, layer.name);
    card.append(h);
    const canvas = el("canvas");
    card.append(canvas);
    const cw = layer.shifted_output[0].length;
    drawMap(canvas, layer.shifted_output, Math.min(180, Math.max(90, cw * 6)));
    const change = layer.relative_change;
    const m = el("div", { class: "measure" });
    m.append(el("div", { class: "change", text: `relative change ${change === null ? "–" : fmt(change)}` }));
    const bar = el("div", { class: "bar" });
    bar.style.width = `${Math.min(100, (change || 0) * 100)}%`;
    bar.style.background = COLOURS[k % COLOURS.length];
    m.append(bar);
    const eq = layer.equivariance_error;
    m.append(el("div", {
      text: eq === null
        ? `equivariance error – (${res.shift} px is not a multiple of stride ${layer.stride})`
        : `equivariance error ${fmt(eq)} (output shifted ${res.shift / layer.stride} px)`,
    }));
    card.append(m);
    cards.append(card);
  });
}

function drawChart(res) {
  const svg = $("shift-chart");
  svg.replaceChildren();
  const W = 420, H = 200, L = 34, B = 24, T = 8, R = 8;
  const xs = res.shifts;
  let ymax = 0;
  for (const l of res.layers) for (const v of l.curve) if (v !== null) ymax = Math.max(ymax, v);
  ymax = ymax > 0 ? ymax * 1.05 : 1;
  const x = (s) => L + ((W - L - R) * s) / Math.max(1, xs[xs.length - 1]);
  const y = (v) => T + (H - T - B) * (1 - v / ymax);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  for (const s of xs) add("text", { x: x(s), y: H - 8, "font-size": 10, "text-anchor": "middle", fill: "#667085" }, s);
  for (const f of [0, 0.5, 1]) {
    add("text", { x: L - 4, y: y(f * ymax) + 3, "font-size": 10, "text-anchor": "end", fill: "#667085" }, fmt(Number((f * ymax).toPrecision(2))));
  }
  const n = xs.length;
  const cur = ((res.shift % n) + n) % n;
  add("line", { x1: x(cur), y1: T, x2: x(cur), y2: H - B, stroke: "#d6336c", "stroke-dasharray": "3 3" });
  res.layers.forEach((l, k) => {
    const pts = l.curve.map((v, i) => (v === null ? null : `${x(xs[i])},${y(v)}`)).filter((p) => p);
    add("polyline", { points: pts.join(" "), fill: "none", stroke: COLOURS[k % COLOURS.length], "stroke-width": 2 });
  });
}

export function showShift(on) {
  visible = on;
  if (on) refreshShift();
}

export function initShift() {
  const sel = $("shift-preset");
  for (const [name, p] of Object.entries(state.presets.inputs)) sel.append(new Option(p.label, name));
  sel.value = state.presets.inputs.digit ? "digit" : "worked";
  setRange();
  const later = () => { clearTimeout(timer); timer = setTimeout(refreshShift, 60); };
  sel.addEventListener("change", () => { setRange(); later(); });
  $("shift-axis").addEventListener("change", () => { setRange(); later(); });
  $("shift-slider").addEventListener("input", later);
}
