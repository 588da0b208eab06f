// Backward: send gradient 1 from chosen output cells and see where it lands on the input.
import { fmt, renderGrid } from "./common.js";
import { OP_NAMES, changed, onChange, runLayer, state } from "./state.js";

const $ = (id) => document.getElementById(id);
let grad = null; // grad_output: 0 or 1 per output cell
let shape = null;
let seq = 0;
let visible = false;

const EXPLAIN = {
  conv: "Convolution sends each output's gradient to every cell of its window, times that cell's weight: "
    + "one output cell's gradient map is the kernel itself, laid on its window.",
  maxplus: "Max-plus convolution routes each output's gradient to its winning input cell (and its weight), like max pooling.",
  minplus: "Min-plus convolution routes each output's gradient to its smallest sum's input cell (and weight).",
  max: "Max pooling routes each output's gradient to the one winning cell of its window; the others get nothing.",
  min: "Min pooling routes each output's gradient to the window's smallest cell.",
  median: "Median pooling routes each output's gradient to the window's middle element.",
  avg: "Average pooling spreads each output's gradient evenly: 1/divisor to every cell of its window.",
  lp: "Lp pooling gives every cell a share (x/y)^(p-1): a large p concentrates it on the largest cell.",
  gem: "GeM pooling gives every cell a share growing with x^(p-1); p = 1 is the average's even spread.",
  lse: "Log-mean-exp pooling gives every cell its softmax weight exp(beta x) / sum exp(beta x).",
};

function defaultGrad(oh, ow) {
  const g = Array.from({ length: oh }, () => new Array(ow).fill(0));
  const [i, j] = state.selected && state.selected[0] < oh && state.selected[1] < ow
    ? state.selected : [Math.floor((oh - 1) / 2), Math.floor((ow - 1) / 2)];
  g[i][j] = 1;
  return g;
}

export async function refreshBackward() {
  if (!visible) return;
  const mine = ++seq;
  let res;
  try {
    res = await runLayer(state.op, null); // the output's shape first
    const [oh, ow] = res.output_shape;
    if (!grad || !shape || shape[0] !== oh || shape[1] !== ow) {
      grad = defaultGrad(oh, ow);
      shape = [oh, ow];
    }
    res = await runLayer(state.op, grad);
  } catch (err) {
    if (mine !== seq) return;
    $("bw-error").textContent = err.message;
    $("bw-error").hidden = false;
    return;
  }
  if (mine !== seq) return;
  $("bw-error").hidden = true;
  render(res);
}

function render(res) {
  renderGrid($("bw-output-grid"), res.output, {
    cls: (i, j) => (grad[i][j] ? "sent" : ""),
    label: (i, j, v) => fmt(v),
  });
  renderGrid($("bw-input-grid"), state.input, { cls: (i, j) => (res.grad_input[i][j] ? "sent" : "") });
  renderGrid($("bw-grad-input"), res.grad_input, { cls: (i, j, v) => (v ? "nonzero" : "") });
  const hasKernel = res.grad_kernel !== null && res.grad_kernel !== undefined;
  $("bw-kernel-panel").hidden = !hasKernel;
  if (hasKernel) renderGrid($("bw-grad-kernel"), res.grad_kernel, { max: 40, width: 220 });
  const sent = grad.flat().filter((v) => v).length;
  const reached = res.grad_input.flat().filter((v) => v !== 0).length;
  const total = res.grad_input.flat().reduce((a, v) => a + (v || 0), 0);
  $("bw-summary").textContent = `${OP_NAMES[res.op]}, kernel ${res.kernel_size.join("×")}, stride ${res.stride.join("×")}`
    + " (set in the Workbench)";
  const params = Object.entries(res.grad_params).map(([k, v]) => `; gradient of ${k}: ${fmt(v)}`).join("");
  $("bw-explain").textContent = `${EXPLAIN[res.op]} Gradient 1 from ${sent} output cell${sent === 1 ? "" : "s"} `
    + `reaches ${reached} input cell${reached === 1 ? "" : "s"}, summing to ${fmt(total)}${params}.`;
}

export function showBackward(on) {
  visible = on;
  if (on) refreshBackward();
}

export function initBackward() {
  const sel = $("bw-op");
  for (const [op, name] of Object.entries(OP_NAMES)) sel.append(new Option(name, op));
  sel.value = state.op;
  sel.addEventListener("change", () => {
    state.op = sel.value;
    changed("backward");
    refreshBackward();
  });
  $("bw-output-grid").addEventListener("click", (e) => {
    const c = e.target.closest(".cell");
    if (!c || !grad) return;
    const i = Number(c.dataset.i);
    const j = Number(c.dataset.j);
    grad[i][j] = grad[i][j] ? 0 : 1;
    refreshBackward();
  });
  $("bw-all").addEventListener("click", () => {
    if (grad) grad = grad.map((r) => r.map(() => 1));
    refreshBackward();
  });
  $("bw-clear").addEventListener("click", () => {
    if (grad) grad = grad.map((r) => r.map(() => 0));
    refreshBackward();
  });
  onChange((source) => {
    if (source === "workbench") {
      sel.value = state.op;
      if (visible) refreshBackward();
    }
  });
}

// Reset the gradient to the Workbench's chosen cell (when the view opens).
export function resetGradient() {
  grad = null;
  shape = null;
}
