// The arithmetic of one output cell, written out from the server's window slots.
import { el, fmt, identitySymbol } from "./common.js";

function paren(v) {
  return v !== null && v < 0 ? `(${fmt(v)})` : fmt(v);
}

function slotText(op, x, w, t, res, real, settings) {
  if (!real) return [identitySymbol(res.identity), "pad"];
  const p = ` ^${fmt(settings.p)}`;
  switch (op) {
    case "conv": return [`${fmt(x)}·${paren(w)}`, `= ${fmt(t)}`];
    case "maxplus":
    case "minplus": return [`${fmt(x)}+${paren(w)}`, `= ${fmt(t)}`];
    case "lp": return [`${fmt(x)}${p}`, `= ${fmt(t)}`];
    case "gem": return [`max(${fmt(x)},ε)${p}`, `= ${fmt(t)}`];
    case "lse": return [`${fmt(x)}`, `e^β(x−m) = ${fmt(t)}`];
    default: return [fmt(x), ""];
  }
}

function position(index, width) {
  if (index === -1) return "a zero of the padding";
  return `input (${Math.floor(index / width)}, ${index % width})`;
}

// Render the arithmetic of output (i, j) of `res` (a /api/layer answer) into `box`.
export function renderArith(box, res, i, j, settings) {
  box.replaceChildren();
  const out = res.output[i][j];
  if (!res.windows) {
    box.append(el("div", { class: "title", text: `output (${i}, ${j}) = ${fmt(out)}` }));
    box.append(el("div", { class: "dim", text: "the windows of a map this large are not listed; choose a smaller map" }));
    return;
  }
  const w = res.windows;
  const idx = w.index[i][j];
  const vals = w.values[i][j];
  const terms = w.terms[i][j];
  const winner = w.winner[i][j];
  const [kh, kw] = res.kernel_size;
  const kernel = settings.kernel ? settings.kernel.flat() : null;
  const rows = w.row[i][j];
  const cols = w.col[i][j];
  box.dataset.output = out === null ? "" : String(out);
  box.dataset.i = i;
  box.dataset.j = j;
  const r0 = rows[0], r1 = rows[rows.length - 1], c0 = cols[0], c1 = cols[cols.length - 1];
  box.append(el("div", { class: "title",
    text: `output (${i}, ${j}): window over rows ${r0}–${r1}, columns ${c0}–${c1} of the padded input` }));
  const grid = el("div", { class: "slots" });
  grid.style.gridTemplateColumns = `repeat(${kw}, auto)`;
  const shown = [];
  for (let k = 0; k < idx.length; k++) {
    const real = idx[k] !== -2;
    const [a, b] = slotText(res.op, vals[k], kernel ? kernel[k] : null, terms[k], res, real, settings);
    const slot = el("div", { class: "slot" + (k === winner ? " winner" : "") + (real ? "" : " none") });
    slot.append(el("div", { text: a }));
    if (b) slot.append(el("div", { text: b }));
    grid.append(slot);
    if (real) shown.push(terms[k]);
  }
  box.append(grid);
  const result = el("div", { class: "result" });
  const list = shown.map((t) => fmt(t));
  const y = `<b>${fmt(out)}</b>`;
  const W = res.input_shape[1];
  let text;
  switch (res.op) {
    case "conv":
      text = `sum of the ${list.length} products: ${list.join(" + ")} = ${y}`;
      break;
    case "maxplus":
    case "minplus":
      text = `${res.reduce} of the ${list.length} sums x + w: ${res.reduce}(${list.join(", ")}) = ${y}` +
        (winner !== null ? `; the winner is slot ${Math.floor(winner / kw)},${winner % kw} (${position(idx[winner], W)})` : "");
      break;
    case "max":
    case "min":
      text = `${res.reduce}(${list.join(", ")}) = ${y}` +
        (winner !== null ? `, the winner: ${position(idx[winner], W)}` : "");
      break;
    case "median": {
      const sorted = shown.slice().sort((a, b) => a - b).map((t) => fmt(t));
      const m = Math.floor((sorted.length - 1) / 2);
      text = `sorted: ${sorted.join(", ")}; the ${m + 1}${["st", "nd", "rd"][m] || "th"} of ${sorted.length} = ${y}` +
        (winner !== null ? ` (${position(idx[winner], W)})` : "");
      break;
    }
    case "avg":
      text = `(${list.join(" + ")}) / ${fmt(w.divisor[i][j])} = ${y}`;
      break;
    case "lp":
      text = `(${list.join(" + ")}) ^ (1/${fmt(settings.p)}) = ${y}`;
      break;
    case "gem":
      text = `((${list.join(" + ")}) / ${list.length}) ^ (1/${fmt(settings.p)}) = ${y}`;
      break;
    case "lse": {
      const m = Math.max(...vals.filter((v, k) => idx[k] !== -2));
      text = `m = max = ${fmt(m)}; m + log((${list.join(" + ")}) / ${list.length}) / ${fmt(settings.beta)} = ${y}`;
      break;
    }
    default:
      text = `= ${y}`;
  }
  const pads = idx.filter((v) => v === -2).length;
  if (pads && res.identity) {
    text += `; the ${pads} padding cell${pads === 1 ? "" : "s"} (${identitySymbol(res.identity)}) take no part`;
  }
  result.innerHTML = text;
  box.append(result);
}
