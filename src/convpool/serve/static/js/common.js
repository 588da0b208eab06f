// Shared helpers of the explorer: the API, number formatting, colours and grids.
// Every number drawn here comes from the server, which computes it with convpool.

export async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  };
  const res = await fetch(path, init);
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = { error: `the server answered ${res.status} without JSON` };
  }
  if (!res.ok) {
    const err = new Error((data && data.error) || `HTTP ${res.status}`);
    err.status = res.status;
    err.field = data && data.field;
    throw err;
  }
  return data;
}

// A number as the page shows it: whole numbers exactly, others to 4 significant digits.
export function fmt(v, identity) {
  if (v === null || v === undefined) return identity || "–";
  if (Object.is(v, -0)) v = 0;
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

export function identitySymbol(identity) {
  if (identity === "-inf") return "−∞";
  if (identity === "+inf") return "+∞";
  if (identity === "left out") return "·";
  return "·";
}

export function maxAbs(grid) {
  let m = 0;
  for (const row of grid) for (const v of row) if (v !== null && Math.abs(v) > m) m = Math.abs(v);
  return m || 1;
}

// Diverging colours: blue for negative, white for 0, orange for positive.
export function colour(v, scale) {
  if (v === null || v === undefined) return null;
  const t = Math.max(-1, Math.min(1, v / scale));
  const hi = t >= 0 ? [230, 96, 20] : [28, 110, 200];
  const a = Math.abs(t);
  const mix = (c) => Math.round(255 + (c - 255) * a);
  return `rgb(${mix(hi[0])}, ${mix(hi[1])}, ${mix(hi[2])})`;
}

export function textColour(v, scale) {
  return v !== null && Math.abs(v / scale) > 0.55 ? "#fff" : "#1d2433";
}

// The cell size that fits `cols` cells into `width` pixels.
export function cellSize(cols, width, max = 46, min = 6) {
  return Math.max(min, Math.min(max, Math.floor((width - 2) / cols) - 1));
}

// Draw a grid of numbers as coloured cells.  opts: {scale, size, numbers, cls(i, j, v), label(i, j, v)}
export function renderGrid(el, grid, opts = {}) {
  const rows = grid.length;
  const cols = rows ? grid[0].length : 0;
  const width = opts.width || el.parentElement.clientWidth || 400;
  const size = opts.size || cellSize(cols, width, opts.max || 46);
  const scale = opts.scale || maxAbs(grid);
  const font = Math.max(8, Math.min(13, Math.floor(size / 3.2)));
  const label = opts.label || ((i, j, v) => fmt(v));
  const labels = grid.map((row, i) => row.map((v, j) => label(i, j, v)));
  const fits = (ls) => Math.max(1, ...ls.flat().map((t) => t.length)) * 0.62 * font <= size - 3;
  let shown = opts.numbers === false ? null : fits(labels) ? labels : null;
  if (!shown && opts.numbers !== false && !opts.label) { // fewer digits where the full ones do not fit
    const short = grid.map((row) => row.map((v) => (v === null ? "–" : String(Number(v.toPrecision(2))))));
    if (fits(short)) shown = short;
  }
  el.classList.add("grid");
  el.style.gridTemplateColumns = `repeat(${cols}, ${size}px)`;
  el.style.gridAutoRows = `${size}px`;
  el.style.fontSize = `${font}px`;
  const frag = document.createDocumentFragment();
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = grid[i][j];
      const c = document.createElement("div");
      c.className = "cell";
      c.dataset.i = i;
      c.dataset.j = j;
      c.dataset.value = v === null ? "" : String(v);
      const bg = colour(v, scale);
      if (bg) {
        c.style.background = bg;
        c.style.color = textColour(v, scale);
      }
      const extra = opts.cls ? opts.cls(i, j, v) : "";
      if (extra) c.className += " " + extra;
      if (shown) c.textContent = shown[i][j];
      c.title = `(${i}, ${j}): ${labels[i][j]}`;
      frag.appendChild(c);
    }
  }
  el.replaceChildren(frag);
  return { size, scale };
}

export function cellAt(el, i, j) {
  return el.querySelector(`.cell[data-i="${i}"][data-j="${j}"]`);
}

// Parse a grid typed as text: rows on lines (or split by ';'), values by spaces or commas.
export function parseGrid(text) {
  const rows = text.split(/[\n;]/).map((r) => r.trim()).filter((r) => r.length);
  return rows.map((r) => r.split(/[\s,]+/).filter((v) => v.length).map((v) => {
    const n = Number(v);
    return Number.isFinite(n) ? n : v; // a word is sent as it is: the server names the cell
  }));
}

export function gridText(grid) {
  return grid.map((r) => r.map((v) => fmt(v)).join(" ")).join("\n");
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// Draw a map as pixels on a canvas (grey levels, or diverging colours when signed).
export function drawMap(canvas, map, size) {
  const h = map.length;
  const w = h ? map[0].length : 0;
  canvas.width = w;
  canvas.height = h;
  canvas.style.width = `${size || w * 4}px`;
  canvas.style.height = `${((size || w * 4) * h) / w}px`;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of map) for (const v of row) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const signed = lo < 0;
  const scale = signed ? Math.max(-lo, hi) || 1 : hi - Math.min(lo, 0) || 1;
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const v = map[i][j];
      const k = 4 * (i * w + j);
      if (v === null) {
        img.data.set([200, 200, 200, 255], k);
      } else if (signed) {
        const m = colour(v, scale).match(/\d+/g).map(Number);
        img.data.set([m[0], m[1], m[2], 255], k);
      } else { // bright is large, as in a photograph or an MNIST digit
        const g = Math.round((255 * (v - Math.min(lo, 0))) / scale);
        img.data.set([g, g, g, 255], k);
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}
