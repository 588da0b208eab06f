// Network: draw a digit, run LeNet-5 (trained on MNIST by convpool) and show every layer.
import { api, drawMap, el, fmt } from "./common.js";

const $ = (id) => document.getElementById(id);
let image = null; // the last 28 x 28 input
let visible = false;
let ready = false;
let polling = null;
let seq = 0;

// The drawing as MNIST prepares its digits: the ink's bounding box scaled into 20 x 20,
// placed in 28 x 28 so that its centre of mass is the centre.
function toMnist(canvas) {
  const w = canvas.width;
  const h = canvas.height;
  const data = canvas.getContext("2d").getImageData(0, 0, w, h).data;
  let top = h, left = w, bottom = -1, right = -1;
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      if (data[4 * (i * w + j)] > 30) {
        top = Math.min(top, i); bottom = Math.max(bottom, i);
        left = Math.min(left, j); right = Math.max(right, j);
      }
    }
  }
  if (bottom < 0) return null;
  const bw = right - left + 1;
  const bh = bottom - top + 1;
  const f = 20 / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * f));
  const th = Math.max(1, Math.round(bh * f));
  const small = document.createElement("canvas");
  small.width = 28;
  small.height = 28;
  const ctx = small.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(canvas, left, top, bw, bh, 0, 0, tw, th);
  const px = ctx.getImageData(0, 0, tw, th).data;
  let m = 0, mi = 0, mj = 0;
  for (let i = 0; i < th; i++) {
    for (let j = 0; j < tw; j++) {
      const v = px[4 * (i * tw + j)] / 255;
      m += v; mi += v * i; mj += v * j;
    }
  }
  const oi = Math.round(14 - (m ? mi / m : th / 2)) ;
  const oj = Math.round(14 - (m ? mj / m : tw / 2));
  const out = Array.from({ length: 28 }, () => new Array(28).fill(0));
  for (let i = 0; i < th; i++) {
    for (let j = 0; j < tw; j++) {
      const r = i + oi;
      const c = j + oj;
      if (r >= 0 && r < 28 && c >= 0 && c < 28) out[r][c] = Math.round((px[4 * (i * tw + j)] / 255) * 1000) / 1000;
    }
  }
  return out;
}

async function predict() {
  if (!image || !ready) return;
  const mine = ++seq;
  let res;
  try {
    res = await api("/api/network", { image, pool: $("net-pool").value });
  } catch (err) {
    if (mine === seq) $("net-status").textContent = err.message;
    return;
  }
  if (mine !== seq) return;
  render(res);
}

function percent(p) {
  return p < 1e-4 ? "<0.01%" : `${(100 * p).toFixed(2)}%`;
}

function render(res) {
  $("net-prediction").textContent = String(res.prediction);
  $("net-prediction").dataset.prediction = String(res.prediction);
  $("net-confidence").textContent = `(${percent(res.probabilities[res.prediction])} sure; this model's test accuracy `
    + `${res.test_accuracy === null ? "–" : percent(res.test_accuracy)})`;
  const probs = $("net-probs");
  probs.replaceChildren();
  res.probabilities.forEach((p, d) => {
    const bar = el("div", { class: "pbar" + (d === res.prediction ? " top" : "") });
    bar.style.width = `${Math.max(0.5, 100 * p)}%`;
    const track = el("div");
    track.append(bar);
    probs.append(el("div", { text: String(d) }), track, el("div", { text: percent(p) }));
  });
  const box = $("net-layers");
  box.replaceChildren();
  const inputLayer = el("div", { class: "net-layer" });
  inputLayer.append(el("h3", { text: "input: 28 × 28, what the network sees" }));
  const ic = el("canvas");
  inputLayer.append(ic);
  drawMap(ic, image, 84);
  box.append(inputLayer);
  for (const layer of res.layers) {
    if (layer.name.endsWith("Flatten")) continue;
    const div = el("div", { class: "net-layer" });
    div.append(el("h3", { text: `${layer.name}: ${layer.shape.join(" × ")}  (values ${fmt(layer.min)} … ${fmt(layer.max)})` }));
    const maps = el("div", { class: "maps" });
    if (layer.maps) {
      const side = layer.shape[1] >= 20 ? 70 : layer.shape[1] >= 10 ? 56 : 40;
      for (const m of layer.maps) {
        const c = el("canvas");
        maps.append(c);
        drawMap(c, m, side);
      }
    } else {
      const c = el("canvas");
      maps.append(c);
      drawMap(c, [layer.values], Math.min(600, layer.values.length * 6));
      c.style.height = "14px";
    }
    div.append(maps);
    box.append(div);
  }
}

async function poll() {
  let st;
  try {
    st = await api("/api/network");
  } catch (err) {
    $("net-status").textContent = err.message;
    return;
  }
  const acc = Object.entries(st.variants)
    .map(([k, v]) => `${k}: ${v.state}${v.test_accuracy ? ` (test accuracy ${fmt(100 * v.test_accuracy)}%)` : ""}`)
    .join(" · ");
  $("net-status").dataset.state = st.state;
  if (st.state === "ready") {
    $("net-status").textContent = `LeNet-5 on MNIST, trained by convpool: ${acc}. Checkpoints in ${st.cache_dir}.`;
    ready = true;
    clearInterval(polling);
    polling = null;
    predict();
  } else if (st.state === "training") {
    $("net-status").textContent = `Preparing the models (first start): ${st.message}. ${acc}`;
    ready = false;
    if (!polling) polling = setInterval(poll, 1500);
  } else {
    $("net-status").textContent = st.message;
    ready = false;
    clearInterval(polling);
    polling = null;
  }
}

function drawSample(img) {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const s = canvas.width / 28;
  for (let i = 0; i < 28; i++) {
    for (let j = 0; j < 28; j++) {
      const g = Math.round(255 * img[i][j]);
      ctx.fillStyle = `rgb(${g},${g},${g})`;
      ctx.fillRect(j * s, i * s, s, s);
    }
  }
}

export function showNetwork(on) {
  visible = on;
  if (on) poll();
}

export function initNetwork() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  let drawing = false;
  let last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    last = at(e);
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = at(e);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 20;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    last = p;
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    image = toMnist(canvas);
    predict();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    image = null;
    $("net-prediction").textContent = "–";
    delete $("net-prediction").dataset.prediction;
    $("net-confidence").textContent = "";
    $("net-probs").replaceChildren();
    $("net-layers").replaceChildren();
  });
  $("draw-sample").addEventListener("click", async () => {
    const s = await api(`/api/network/sample?index=${Math.floor(Math.random() * 10000)}`).catch((err) => {
      $("net-status").textContent = err.message;
      return null;
    });
    if (!s) return;
    drawSample(s.image);
    image = s.image;
    predict();
  });
  $("net-pool").addEventListener("change", predict);
}
