// The Workbench: the controls, the padded input, the kernel, the output and one window's arithmetic.
import { renderArith } from "./arith.js";
import { cellAt, fmt, gridText, identitySymbol, maxAbs, parseGrid, renderGrid } from "./common.js";
import { changed, onChange, runLayer, state } from "./state.js";

const $ = (id) => document.getElementById(id);
let result = null;
let seq = 0;
let timer = null;
let playing = null;
// what the op pads with when no padding_mode is given
const DEFAULT_PADDING = {
  conv: "zeros", avg: "zeros", max: "−∞", maxplus: "−∞", lse: "−∞", min: "+∞", minplus: "+∞",
  median: "left out", gem: "left out", lp: "none",
};

function randomGrid(n) {
  const g = [];
  for (let i = 0; i < n; i++) {
    const row = [];
    for (let j = 0; j < n; j++) row.push(Math.round((Math.random() * 2 - 1) * 30) / 10);
    g.push(row);
  }
  return g;
}

function setInput(name) {
  state.inputName = name;
  if (name === "random") {
    state.input = randomGrid(8);
    $("input-about").textContent = "random values in [-3, 3], new each time you choose it";
  } else {
    const p = state.presets.inputs[name];
    state.input = p.grid.map((r) => r.slice());
    $("input-about").textContent = p.about;
  }
  const oneD = state.input.length === 1;
  if (oneD && state.kernel.length !== 1) setKernel("diff-1d");
  if (!oneD && state.kernel.length === 1) setKernel("vertical-edge");
  if (oneD) state.kernelSize = [1, state.kernelSize[1]];
  else if (state.kernelSize[0] === 1) state.kernelSize = [state.kernelSize[1], state.kernelSize[1]];
  $("input-text").value = gridText(state.input);
  state.selected = null;
}

function setKernel(name) {
  state.kernel = state.presets.kernels[name].grid.map((r) => r.slice());
  $("kernel-preset").value = name;
}

function syncControls() {
  $("op").value = state.op;
  $("kernel-rows").value = state.kernel.length;
  $("kernel-cols").value = state.kernel[0].length;
  $("ks-rows").value = state.kernelSize[0];
  $("ks-cols").value = state.kernelSize[1];
  const fields = state.ops[state.op].fields;
  for (const node of document.querySelectorAll("#controls .param")) {
    node.hidden = !(node.dataset.field in fields);
  }
  $("kernel-panel").hidden = !("kernel" in fields);
  $("op-about").textContent = state.ops[state.op].description;
  $("padding-mode").options[0].textContent = `${DEFAULT_PADDING[state.op]} (default)`;
  renderKernelEditor();
}

function renderKernelEditor() {
  const box = $("kernel-editor");
  const k = state.kernel;
  box.style.gridTemplateColumns = `repeat(${k[0].length}, 1fr)`;
  box.replaceChildren();
  k.forEach((row, i) => row.forEach((v, j) => {
    const inp = document.createElement("input");
    inp.value = fmt(v);
    inp.setAttribute("aria-label", `kernel (${i}, ${j})`);
    inp.addEventListener("change", () => {
      const n = Number(inp.value);
      state.kernel[i][j] = inp.value.trim() !== "" && Number.isFinite(n) ? n : inp.value;
      $("kernel-preset").value = "";
      schedule();
    });
    box.append(inp);
  }));
}

function resizeKernel(rows, cols) {
  const k = [];
  for (let i = 0; i < rows; i++) {
    const row = [];
    for (let j = 0; j < cols; j++) row.push(i < state.kernel.length && j < state.kernel[0].length ? state.kernel[i][j] : 0);
    k.push(row);
  }
  state.kernel = k;
}

function readControls() {
  state.op = $("op").value;
  state.kernelSize = [Number($("ks-rows").value) || 1, Number($("ks-cols").value) || 1];
  state.stride = Number($("stride").value) || 1;
  const pad = $("padding").value;
  state.padding = pad === "same" || pad === "valid" ? pad : Number(pad);
  state.paddingMode = $("padding-mode").value;
  state.dilation = Number($("dilation").value) || 1;
  state.ceilMode = $("ceil-mode").checked;
  state.countIncludePad = $("count-include-pad").checked;
  state.p = Number($("p").value) || 2;
  state.beta = Number($("beta").value) || 1;
}

export function schedule() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 120);
}

export async function refresh() {
  const mine = ++seq;
  let res;
  try {
    res = await runLayer(state.op);
  } catch (err) {
    if (mine !== seq) return;
    showError(err.message);
    return;
  }
  if (mine !== seq) return;
  $("error").hidden = true;
  result = res;
  const [oh, ow] = res.output_shape;
  if (!state.selected || state.selected[0] >= oh || state.selected[1] >= ow) {
    state.selected = [Math.floor((oh - 1) / 2), Math.floor((ow - 1) / 2)];
  }
  render();
  changed("workbench");
}

function showError(message) {
  result = null;
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  $("formula").textContent = "";
  $("output-grid").replaceChildren();
  $("arith").replaceChildren();
  $("notes").replaceChildren();
  renderGrid($("input-grid"), state.input.map((r) => r.map((v) => (typeof v === "number" ? v : null))));
}

function render() {
  const res = result;
  $("formula").textContent = formulaText(res.formulas);
  $("input-caption").textContent = `${res.input_shape.join(" × ")}, padded to ${res.padded_input.length} × ${res.padded_input[0].length}`;
  $("output-caption").textContent = res.output_shape.join(" × ");
  renderInput(res);
  if (state.ops[state.op].fields.kernel !== undefined) {
    renderGrid($("kernel-grid"), state.kernel, { max: 40, width: 200 });
  }
  const out = $("output-grid");
  renderGrid(out, res.output);
  $("notes").replaceChildren(...res.notes.map((n) => Object.assign(document.createElement("li"), { textContent: n })));
  select(...state.selected);
}

// "H_out = GENERAL = NUMBERS = N" per dim: the general formula once, then each dim's numbers.
function formulaText(formulas) {
  const lines = formulas.map((f) => f.split(" = "));
  const general = `out = ${lines[0][1].replace(/H_in/g, "in")}`;
  return [general, ...lines.map((p) => `${p[0]} = ${p.slice(2).join(" = ")}`)].join("\n");
}

function renderInput(res) {
  const [[pt], [pl]] = res.padding;
  const [h, w] = res.input_shape;
  const sym = identitySymbol(res.identity);
  renderGrid($("input-grid"), res.padded_input, {
    scale: maxAbs(res.padded_input),
    cls: (i, j) => {
      const idx = res.padded_index[i][j];
      const inside = i >= pt && i < pt + h && j >= pl && j < pl + w;
      let c = inside ? "" : "pad";
      if (idx === -2) c += " identity";
      if (inside) {
        c += " editable";
        if (i === pt) c += " edge-t";
        if (i === pt + h - 1) c += " edge-b";
        if (j === pl) c += " edge-l";
        if (j === pl + w - 1) c += " edge-r";
      }
      return c;
    },
    label: (i, j, v) => (res.padded_index[i][j] === -2 ? sym : fmt(v)),
  });
}

// Show output (i, j): its window on the input and its arithmetic.
export function select(i, j) {
  if (!result) return;
  state.selected = [i, j];
  for (const c of document.querySelectorAll("#output-grid .cell.selected")) c.classList.remove("selected");
  const cell = cellAt($("output-grid"), i, j);
  if (cell) cell.classList.add("selected");
  const inputGrid = $("input-grid");
  for (const c of inputGrid.querySelectorAll(".in-window, .winner")) c.classList.remove("in-window", "winner");
  const w = result.windows;
  if (w) {
    const rows = w.row[i][j];
    const cols = w.col[i][j];
    rows.forEach((r, k) => {
      const c = cellAt(inputGrid, r, cols[k]);
      if (c) c.classList.add(k === w.winner[i][j] ? "winner" : "in-window");
    });
  }
  renderArith($("arith"), result, i, j, state);
}

function step(delta) {
  if (!result) return;
  const [oh, ow] = result.output_shape;
  const [i, j] = state.selected;
  const n = (((i * ow + j + delta) % (oh * ow)) + oh * ow) % (oh * ow);
  select(Math.floor(n / ow), n % ow);
}

function editCell(cell) {
  const [pt, pl] = [result.padding[0][0], result.padding[1][0]];
  const i = Number(cell.dataset.i) - pt;
  const j = Number(cell.dataset.j) - pl;
  const inp = document.createElement("input");
  inp.value = fmt(state.input[i][j]);
  cell.replaceChildren(inp);
  inp.focus();
  inp.select();
  const done = () => {
    const n = Number(inp.value);
    state.input[i][j] = inp.value.trim() !== "" && Number.isFinite(n) ? n : inp.value;
    $("input-text").value = gridText(state.input);
    schedule();
  };
  inp.addEventListener("blur", done, { once: true });
  inp.addEventListener("keydown", (e) => { if (e.key === "Enter") inp.blur(); });
}

export function initWorkbench() {
  const inputs = $("input-preset");
  for (const [name, p] of Object.entries(state.presets.inputs)) inputs.append(new Option(p.label, name));
  inputs.append(new Option("random 8 × 8 (new each time)", "random"));
  const kernels = $("kernel-preset");
  kernels.append(new Option("(edited)", ""));
  for (const [name, p] of Object.entries(state.presets.kernels)) kernels.append(new Option(p.label, name));
  setInput("worked");
  setKernel("vertical-edge");
  syncControls();

  inputs.addEventListener("change", () => { setInput(inputs.value); syncControls(); schedule(); });
  kernels.addEventListener("change", () => { if (kernels.value) setKernel(kernels.value); syncControls(); schedule(); });
  $("op").addEventListener("change", () => { readControls(); syncControls(); schedule(); });
  for (const id of ["ks-rows", "ks-cols", "stride", "padding", "padding-mode", "dilation", "ceil-mode",
    "count-include-pad", "p", "beta"]) {
    $(id).addEventListener("change", () => { readControls(); schedule(); });
  }
  for (const id of ["kernel-rows", "kernel-cols"]) {
    $(id).addEventListener("change", () => {
      const r = Math.max(1, Math.min(9, Number($("kernel-rows").value) || 1));
      const c = Math.max(1, Math.min(9, Number($("kernel-cols").value) || 1));
      resizeKernel(r, c);
      $("kernel-preset").value = "";
      syncControls();
      schedule();
    });
  }
  $("input-apply").addEventListener("click", () => {
    state.input = parseGrid($("input-text").value);
    inputs.value = "";
    schedule();
  });
  const out = $("output-grid");
  out.addEventListener("mouseover", (e) => {
    const c = e.target.closest(".cell");
    if (c && !playing) select(Number(c.dataset.i), Number(c.dataset.j));
  });
  out.addEventListener("click", (e) => {
    const c = e.target.closest(".cell");
    if (c) select(Number(c.dataset.i), Number(c.dataset.j));
  });
  $("input-grid").addEventListener("click", (e) => {
    const c = e.target.closest(".cell.editable");
    if (c && result && !c.querySelector("input")) editCell(c);
  });
  $("step").addEventListener("click", () => step(1));
  $("step-back").addEventListener("click", () => step(-1));
  $("play").addEventListener("click", () => {
    if (playing) {
      clearInterval(playing);
      playing = null;
      $("play").textContent = "▶ play";
    } else {
      playing = setInterval(() => step(1), 700);
      $("play").textContent = "❚❚ pause";
    }
  });
  onChange((source) => {
    if (source === "backward") { syncControls(); schedule(); }
  });
  window.addEventListener("resize", () => { if (result) render(); });
}
